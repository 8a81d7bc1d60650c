# The dependency direction of DESIGN.md, enforced: the build fails (target sextant_layout_check,
# part of ALL) when a layer includes headers it must not. tests/layout runs the same script on
# a tree with a violation to prove it fails.
add_custom_target(sextant_layout_check ALL
  COMMAND ${CMAKE_COMMAND} -DROOT=${CMAKE_SOURCE_DIR} -P ${CMAKE_SOURCE_DIR}/cmake/check_layout.cmake
  COMMENT "Checking include boundaries (ui/, engine/, app/)"
  VERBATIM)
