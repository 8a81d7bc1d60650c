# Compiler settings shared by every target of the project.
find_program(SEXTANT_CCACHE ccache)
if(SEXTANT_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${SEXTANT_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${SEXTANT_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${SEXTANT_CCACHE})
endif()

# sextant_warnings: an interface target every project target links, so third-party code and
# generated protobuf sources are not held to the same bar.
add_library(sextant_warnings INTERFACE)
target_compile_options(sextant_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
  # clang (the sanitizer and fuzz trees) has no -Wshadow=local.
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wshadow=local>
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wno-missing-field-initializers>)
if(SEXTANT_WERROR)
  target_compile_options(sextant_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()

if(SEXTANT_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=undefined>)
  add_link_options(-fsanitize=address,undefined)
endif()
# libFuzzer targets (tests/fuzz): every object carries the coverage libFuzzer steers by; only
# the fuzz targets link libFuzzer itself (-fsanitize=fuzzer), so test programs keep their main.
if(SEXTANT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SEXTANT_FUZZ needs clang (libFuzzer): configure with the fuzz preset")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link>)
endif()
