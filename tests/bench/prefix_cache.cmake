# Prefix caching and paged KV cache benchmarks of the engine's scheduler (not run by CTest; also
# in the engine-only build):
#   build/<dir>/tests/prefix_cache_bench chat --shape 110m
#   build/<dir>/tests/prefix_cache_bench capacity --shape 110m --context 4096 --slots 4
add_executable(prefix_cache_bench ${CMAKE_CURRENT_LIST_DIR}/prefix_cache_bench.cpp)
target_link_libraries(prefix_cache_bench PRIVATE sextant_engine sextant_warnings)
