# Metal backends (included from src/CMakeLists.txt after longbow_core and msl_sim exist).
#  metal-sim (LONGBOW_METAL_SIM, everywhere): metal/*.metal compiled as C++ by the MSL simulator
#            (msl_sim_add_kernels) and linked into longbow_core with the sim runtime adapter.
#  metal     (LONGBOW_METAL, AUTO = on for Apple): metal-cpp runtime adapter; each .metal -> .air
#            (xcrun metal -c, fast math off) -> longbow.metallib installed beside _core.
# The host code in src/longbow/backend/metal/ is shared by both.
include(GNUInstallDirs)

set(LONGBOW_METAL_KERNEL_DIR ${PROJECT_SOURCE_DIR}/metal)
set(LONGBOW_METAL_HOST_DIR ${CMAKE_CURRENT_SOURCE_DIR}/longbow/backend/metal)
file(GLOB LONGBOW_METAL_KERNELS CONFIGURE_DEPENDS ${LONGBOW_METAL_KERNEL_DIR}/*.metal)

if(LONGBOW_METAL STREQUAL "AUTO")
  if(APPLE AND CMAKE_SYSTEM_PROCESSOR MATCHES "arm64|aarch64")
    set(_longbow_metal ON)
  else()
    set(_longbow_metal OFF)
  endif()
else()
  set(_longbow_metal ${LONGBOW_METAL})
endif()
set(_longbow_sim OFF)
if(LONGBOW_METAL_SIM AND TARGET msl_sim)
  set(_longbow_sim ON)
endif()

if(SKBUILD)
  set(_longbow_metal_libdir longbow/lib)
else()
  set(_longbow_metal_libdir ${CMAKE_INSTALL_LIBDIR})
endif()

if(_longbow_metal OR _longbow_sim)
  file(GLOB _host CONFIGURE_DEPENDS ${LONGBOW_METAL_HOST_DIR}/*.cpp)
  list(REMOVE_ITEM _host ${LONGBOW_METAL_HOST_DIR}/sim_runtime.cpp ${LONGBOW_METAL_HOST_DIR}/metal_cpp_runtime.cpp)
  target_sources(longbow_core PRIVATE ${_host})
endif()

if(_longbow_sim)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)  # imported targets are per directory
  msl_sim_add_kernels(longbow_metal_kernels SOURCES ${LONGBOW_METAL_KERNELS} INCLUDE_DIRS ${LONGBOW_METAL_KERNEL_DIR})
  target_sources(longbow_core PRIVATE ${LONGBOW_METAL_HOST_DIR}/sim_runtime.cpp)
  target_compile_definitions(longbow_core PUBLIC LONGBOW_HAS_METAL_SIM=1)  # bindings see it too
  target_link_libraries(longbow_core PRIVATE longbow_metal_kernels)
  target_include_directories(longbow_core PRIVATE $<TARGET_PROPERTY:msl_sim,INTERFACE_INCLUDE_DIRECTORIES>)
  # longbow_core is static: the export set must carry what it links.
  install(TARGETS msl_sim longbow_metal_kernels EXPORT longbowTargets ARCHIVE DESTINATION ${_longbow_metal_libdir})
endif()

if(_longbow_metal)
  include(${PROJECT_SOURCE_DIR}/cmake/metal_cpp.cmake)
  longbow_fetch_metal_cpp()
  target_sources(longbow_core PRIVATE ${LONGBOW_METAL_HOST_DIR}/metal_cpp_runtime.cpp
    ${LONGBOW_METAL_HOST_DIR}/mpsgraph_mlp.mm)
  set_source_files_properties(${LONGBOW_METAL_HOST_DIR}/mpsgraph_mlp.mm PROPERTIES
    COMPILE_OPTIONS "-fobjc-arc")
  target_compile_definitions(longbow_core PUBLIC LONGBOW_HAS_METAL=1)
  target_include_directories(longbow_core PRIVATE ${METAL_CPP_DIR})
  target_link_libraries(longbow_core PUBLIC "-framework Metal" "-framework Foundation" "-framework QuartzCore"
    "-framework MetalPerformanceShaders" "-framework MetalPerformanceShadersGraph")
  if(NOT LONGBOW_BUILD_PYTHON)
    # Native apps linking the installed static library find the installed metallib here.
    target_compile_definitions(longbow_core PRIVATE
      LONGBOW_INSTALLED_METALLIB="${CMAKE_INSTALL_FULL_LIBDIR}/longbow.metallib")
  endif()
  longbow_add_metallib(longbow_metallib ${CMAKE_CURRENT_BINARY_DIR}/longbow.metallib ${LONGBOW_METAL_KERNELS})
  add_dependencies(longbow_core longbow_metallib)
  if(LONGBOW_DEV_OUTPUT)
    add_custom_command(TARGET longbow_metallib POST_BUILD
      COMMAND ${CMAKE_COMMAND} -E make_directory ${LONGBOW_DEV_OUTPUT}/longbow
      COMMAND ${CMAKE_COMMAND} -E copy_if_different ${CMAKE_CURRENT_BINARY_DIR}/longbow.metallib ${LONGBOW_DEV_OUTPUT}/longbow/)
  endif()
  if(LONGBOW_BUILD_PYTHON)
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/longbow.metallib DESTINATION longbow)
  else()
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/longbow.metallib DESTINATION ${_longbow_metal_libdir})
  endif()
endif()
