# msl_sim_add_kernels(<target> SOURCES a.metal ... [INCLUDE_DIRS dir ...])
# Builds a static library <target> holding the given .metal files compiled as C++ by the MSL
# simulator, plus a registry; anything linking <target> finds the kernels with
# msl_sim::find_kernel(name) / msl_sim::dispatch(name, ...).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(MSL_SIM_GEN ${CMAKE_CURRENT_LIST_DIR}/../tools/msl_sim_gen.py CACHE INTERNAL "")

function(msl_sim_add_kernels target)
  cmake_parse_arguments(ARG "" "" "SOURCES;INCLUDE_DIRS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "[msl_sim_add_kernels] ${target}: expected SOURCES a.metal ..., found none")
  endif()
  set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_msl_sim)
  set(outs "")
  set(uids "")
  set(dirs "")
  foreach(src ${ARG_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(stem ${src} NAME_WE)
    get_filename_component(dir ${abs} DIRECTORY)
    string(MAKE_C_IDENTIFIER "${target}_${stem}" uid)
    set(out ${gen_dir}/${stem}.metal.cpp)
    add_custom_command(OUTPUT ${out}
      COMMAND Python3::Interpreter ${MSL_SIM_GEN} kernel --input ${abs} --output ${out} --uid ${uid}
      DEPENDS ${abs} ${MSL_SIM_GEN}
      COMMENT "msl_sim: ${stem}.metal -> C++"
      VERBATIM)
    list(APPEND outs ${out})
    list(APPEND uids ${uid})
    list(APPEND dirs ${dir})
  endforeach()
  string(MAKE_C_IDENTIFIER "${target}" tid)
  set(reg ${gen_dir}/registry.cpp)
  add_custom_command(OUTPUT ${reg}
    COMMAND Python3::Interpreter ${MSL_SIM_GEN} registry --output ${reg} --target ${tid} --uids ${uids}
    DEPENDS ${MSL_SIM_GEN}
    COMMENT "msl_sim: registry for ${target}"
    VERBATIM)
  add_library(${target} STATIC ${outs} ${reg})
  list(REMOVE_DUPLICATES dirs)
  target_include_directories(${target} PRIVATE ${dirs} ${ARG_INCLUDE_DIRS})
  target_link_libraries(${target} PUBLIC msl_sim)
  # Kernel code: relaxed math like the Metal build, no FMA contraction, quiet about unused
  # built-ins.
  target_compile_options(${target} PRIVATE -fno-fast-math -ffp-contract=off -Wno-unused-parameter
    -Wno-unused-variable -Wno-unused-but-set-variable)
  # Keep the registry (and with it every kernel object) when linking from a static library.
  if(APPLE)
    target_link_options(${target} INTERFACE "LINKER:-u,_msl_sim_anchor_${tid}")
  else()
    target_link_options(${target} INTERFACE "LINKER:--undefined=msl_sim_anchor_${tid}")
  endif()
endfunction()
