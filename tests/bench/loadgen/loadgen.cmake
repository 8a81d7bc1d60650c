# sextant-loadgen: many agents with synthetic inventory and metrics in one process (built with
# the tests, never installed), and the console-side benchmark that runs against it.
add_library(sextant_loadgen STATIC ${CMAKE_CURRENT_LIST_DIR}/synthetic_sources.cpp
                                   ${CMAKE_CURRENT_LIST_DIR}/loadgen_fleet.cpp)
target_include_directories(sextant_loadgen PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(sextant_loadgen PUBLIC sextant_connectors sextant_console_domain sextant_agent_domain PRIVATE sextant_warnings)

add_executable(sextant-loadgen ${CMAKE_CURRENT_LIST_DIR}/loadgen_main.cpp)
target_link_libraries(sextant-loadgen PRIVATE sextant_loadgen CLI11::CLI11 sextant_warnings)

add_executable(fleet_connector_bench ${CMAKE_CURRENT_LIST_DIR}/fleet_connector_bench.cpp)
target_link_libraries(fleet_connector_bench PRIVATE sextant_connectors sextant_console_domain sextant_agent_domain CLI11::CLI11
                                                    sextant_warnings)
add_dependencies(fleet_connector_bench sextant-loadgen)
