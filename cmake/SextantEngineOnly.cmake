# The engine-only build (SEXTANT_ENGINE_ONLY=ON): sextant_engine with the GPU backends found by
# SextantGpu, a `sextant` with the engine's verbs only (run, bench, tokenize, model) and
# engine_tests. It needs a C++20 compiler, CMake and Threads; everything else is optional:
#   - OpenSSL: model digests use it where found, else the portable sha256 (engine/base/sha256.h);
#   - CLI11 and nlohmann_json (header-only) and GoogleTest: installed packages where found, else
#     the copies in SEXTANT_DEVICE_KIT, a folder that scripts/device-kit.sh fills on a machine
#     that has them (include/ with CLI/ and nlohmann/, googletest/ with GoogleTest's sources).
set(SEXTANT_DEVICE_KIT "" CACHE PATH "Folder made by scripts/device-kit.sh (engine-only builds)")

find_package(Threads REQUIRED)
find_package(OpenSSL 3 QUIET)
find_package(CLI11 CONFIG QUIET)
find_package(nlohmann_json 3.10 QUIET)

set(_kit_include "")
if(SEXTANT_DEVICE_KIT)
  if(NOT EXISTS ${SEXTANT_DEVICE_KIT}/include/CLI/CLI.hpp)
    message(FATAL_ERROR "SEXTANT_DEVICE_KIT=${SEXTANT_DEVICE_KIT} has no include/CLI/CLI.hpp "
                        "(make it with scripts/device-kit.sh)")
  endif()
  set(_kit_include ${SEXTANT_DEVICE_KIT}/include)
endif()
if(NOT TARGET CLI11::CLI11 OR NOT TARGET nlohmann_json::nlohmann_json)
  if(NOT _kit_include)
    message(FATAL_ERROR "CLI11 or nlohmann_json not found: install them or pass "
                        "-DSEXTANT_DEVICE_KIT=<folder made by scripts/device-kit.sh>")
  endif()
endif()

include(SextantBuildInfo)
add_subdirectory(engine)

# `sextant` with the engine verbs: the same sources as the full console's verbs.
set(_console ${PROJECT_SOURCE_DIR}/app/sextant)
add_executable(sextant ${_console}/main.cpp ${PROJECT_SOURCE_DIR}/app/cli/verb.cpp
               ${_console}/run_verb.cpp ${_console}/bench_verb.cpp ${_console}/tokenize_verb.cpp
               ${_console}/model_verb.cpp)
target_include_directories(sextant PRIVATE ${PROJECT_SOURCE_DIR})
if(TARGET CLI11::CLI11 AND TARGET nlohmann_json::nlohmann_json)
  target_link_libraries(sextant PRIVATE CLI11::CLI11 nlohmann_json::nlohmann_json)
else()
  target_include_directories(sextant SYSTEM PRIVATE ${_kit_include})
endif()
target_link_libraries(sextant PRIVATE sextant_engine sextant_warnings)
# Where the full build puts it (the tests and scripts/device-check.sh run it from there).
set_target_properties(sextant PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/app/sextant)

if(SEXTANT_BUILD_TESTS)
  enable_testing()
  find_package(GTest QUIET)
  if(NOT TARGET GTest::gtest)
    if(NOT EXISTS ${SEXTANT_DEVICE_KIT}/googletest/CMakeLists.txt)
      message(FATAL_ERROR "GoogleTest not found: install it or pass "
                          "-DSEXTANT_DEVICE_KIT=<folder made by scripts/device-kit.sh>")
    endif()
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory(${SEXTANT_DEVICE_KIT}/googletest ${CMAKE_BINARY_DIR}/googletest
                     EXCLUDE_FROM_ALL SYSTEM)
    foreach(_lib gtest gmock gtest_main)  # GoogleTest's own CMake defines these in newer releases
      if(NOT TARGET GTest::${_lib})
        add_library(GTest::${_lib} ALIAS ${_lib})
      endif()
    endforeach()
  endif()
  add_subdirectory(tests)
endif()

message(STATUS "Sextant ${PROJECT_VERSION} (engine only): backends=${SEXTANT_BACKENDS}")
