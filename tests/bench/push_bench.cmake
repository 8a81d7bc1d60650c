# Push benchmark (not run by CTest): one validated spec pushed end to end to N agents on
# 127.0.0.1 with the tiny model: build/<dir>/tests/push_bench --agents 20
add_executable(push_bench ${CMAKE_CURRENT_LIST_DIR}/push_bench.cpp)
target_include_directories(push_bench PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(push_bench PRIVATE sextant_connectors sextant_warnings)
target_compile_definitions(push_bench PRIVATE ${SEXTANT_TEST_DEFINITIONS})
