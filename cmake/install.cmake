# Installs longbow_core as a CMake package (find_package(longbow) -> longbow::core) with the
# public header. Inside a wheel (scikit-build-core) it lands under longbow/ next to _core, so a
# pip-installed longbow can be embedded: longbow_DIR=$(python -c "import longbow; print(longbow.cmake_dir())").
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(SKBUILD)
  set(LONGBOW_INSTALL_LIBDIR longbow/lib)
  set(LONGBOW_INSTALL_INCLUDEDIR longbow/include)
else()
  set(LONGBOW_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
  set(LONGBOW_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
endif()
set(LONGBOW_INSTALL_CMAKEDIR ${LONGBOW_INSTALL_LIBDIR}/cmake/longbow)

set_target_properties(longbow_core PROPERTIES EXPORT_NAME core)
install(TARGETS longbow_core EXPORT longbowTargets
        ARCHIVE DESTINATION ${LONGBOW_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${LONGBOW_INSTALL_INCLUDEDIR})
# Every public header: longbow.h includes the others, so the set is the directory, not a list.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/longbow/ DESTINATION ${LONGBOW_INSTALL_INCLUDEDIR}/longbow
        FILES_MATCHING PATTERN "*.h")
install(EXPORT longbowTargets NAMESPACE longbow:: DESTINATION ${LONGBOW_INSTALL_CMAKEDIR})

file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/longbowConfig.cmake.in [=[
@PACKAGE_INIT@
include(CMakeFindDependencyMacro)
find_dependency(Threads)
include("${CMAKE_CURRENT_LIST_DIR}/longbowTargets.cmake")
]=])
configure_package_config_file(${CMAKE_CURRENT_BINARY_DIR}/longbowConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/longbowConfig.cmake INSTALL_DESTINATION ${LONGBOW_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/longbowConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/longbowConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/longbowConfigVersion.cmake
        DESTINATION ${LONGBOW_INSTALL_CMAKEDIR})
