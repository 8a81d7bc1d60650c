# Scaling benchmarks of the agent's serving stack (not run by CTest):
#   build/<dir>/tests/scaling_bench zero-to-first-token
#   build/<dir>/tests/scaling_bench replicas-throughput --replicas 1,2,4
add_executable(scaling_bench ${CMAKE_CURRENT_LIST_DIR}/scaling_bench.cpp)
target_link_libraries(scaling_bench PRIVATE sextant_connectors sextant_warnings)
