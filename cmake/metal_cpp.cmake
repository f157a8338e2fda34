# Apple-only helpers of the metal backend (included by cmake/metal.cmake when LONGBOW_METAL is on).
#  longbow_fetch_metal_cpp(): metal-cpp headers at configure time, pinned by SHA-256 -> METAL_CPP_DIR.
#    Offline builds: -DFETCHCONTENT_SOURCE_DIR_METAL_CPP=/path/to/unpacked/metal-cpp.
#  longbow_add_metallib(target output src.metal ...): each .metal -> .air (xcrun metal -c, fast
#    math off) -> one .metallib.
include(FetchContent)

set(LONGBOW_METAL_CPP_URL "https://developer.apple.com/metal/cpp/files/metal-cpp_macOS14.2_iOS17.2.zip"
    CACHE STRING "Apple's metal-cpp archive")
# Hash of the archive above as recorded by the xmake package registry; re-check when changing the URL.
set(LONGBOW_METAL_CPP_SHA256 "d800ddbc3fccabce3a513f975eeafd4057e07a29e905ad5aaef8c1f4e12d9ada"
    CACHE STRING "SHA-256 of LONGBOW_METAL_CPP_URL")
set(LONGBOW_METAL_STD "metal3.0" CACHE STRING "MSL language version for xcrun metal -std=")
set(LONGBOW_METAL_MATH_FLAGS "-fno-fast-math" CACHE STRING
    "Math flags of xcrun metal (fast math off; newer toolchains also accept -fmetal-math-mode=safe)")

function(longbow_fetch_metal_cpp)
  FetchContent_Declare(metal_cpp URL ${LONGBOW_METAL_CPP_URL} URL_HASH SHA256=${LONGBOW_METAL_CPP_SHA256})
  FetchContent_MakeAvailable(metal_cpp)  # headers only: no CMakeLists.txt inside
  if(NOT EXISTS ${metal_cpp_SOURCE_DIR}/Metal/Metal.hpp)
    message(FATAL_ERROR "[metal] expected Metal/Metal.hpp under ${metal_cpp_SOURCE_DIR}, found none "
                        "(set FETCHCONTENT_SOURCE_DIR_METAL_CPP to an unpacked metal-cpp)")
  endif()
  set(METAL_CPP_DIR ${metal_cpp_SOURCE_DIR} PARENT_SCOPE)
endfunction()

function(longbow_add_metallib target output)
  find_program(LONGBOW_XCRUN xcrun REQUIRED)
  set(airs "")
  foreach(src ${ARGN})
    get_filename_component(stem ${src} NAME_WE)
    get_filename_component(dir ${src} DIRECTORY)
    set(air ${CMAKE_CURRENT_BINARY_DIR}/metal_air/${stem}.air)
    file(GLOB headers ${dir}/*.h)
    add_custom_command(OUTPUT ${air}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/metal_air
      COMMAND ${LONGBOW_XCRUN} -sdk macosx metal -std=${LONGBOW_METAL_STD} ${LONGBOW_METAL_MATH_FLAGS}
              -Wall -I ${dir} -c ${src} -o ${air}
      DEPENDS ${src} ${headers}
      COMMENT "metal: ${stem}.metal -> .air"
      VERBATIM)
    list(APPEND airs ${air})
  endforeach()
  add_custom_command(OUTPUT ${output}
    COMMAND ${LONGBOW_XCRUN} -sdk macosx metallib ${airs} -o ${output}
    DEPENDS ${airs}
    COMMENT "metal: longbow.metallib"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${output})
endfunction()
