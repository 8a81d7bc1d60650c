# build_info.cpp is regenerated on every build (cheaply: written only when it changes) so the
# git commit that --version prints is the one that was built, not the one that was configured.
string(REPLACE ";" "," SEXTANT_BACKENDS_CSV "${SEXTANT_BACKENDS}")
set(SEXTANT_BUILD_INFO_CPP ${CMAKE_BINARY_DIR}/generated/build_info.cpp)
add_custom_target(sextant_build_info_gen
  COMMAND ${CMAKE_COMMAND}
          -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DOUTPUT=${SEXTANT_BUILD_INFO_CPP}
          -DVERSION=${PROJECT_VERSION}
          -DBUILD_TYPE=${CMAKE_BUILD_TYPE}
          -DBACKENDS=${SEXTANT_BACKENDS_CSV}
          -P ${CMAKE_SOURCE_DIR}/cmake/gen_build_info.cmake
  BYPRODUCTS ${SEXTANT_BUILD_INFO_CPP}
  COMMENT "Recording build info"
  VERBATIM)
