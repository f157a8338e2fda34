# LONGBOW_SANITIZE="address;undefined" instruments every target of the project.
if(LONGBOW_SANITIZE)
  string(REPLACE ";" "," _longbow_san "${LONGBOW_SANITIZE}")
  add_compile_options(-fsanitize=${_longbow_san} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${_longbow_san})
endif()
