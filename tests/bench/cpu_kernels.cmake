# Micro-benchmarks of the CPU kernels (Google Benchmark; built when it is installed, never run by
# CTest): build/<dir>/tests/cpu_kernels_bench
find_package(benchmark QUIET)
if(benchmark_FOUND)
  add_executable(cpu_kernels_bench ${CMAKE_CURRENT_LIST_DIR}/cpu_kernels_bench.cpp)
  target_link_libraries(cpu_kernels_bench PRIVATE sextant_engine benchmark::benchmark
                                                  sextant_warnings)
endif()
