# The deterministic cluster simulator (DESIGN §11): many Engines on a virtual clock, a
# simulated network, invariant checkers, and `scuttle-sim cluster`. Included from
# sim/CMakeLists.txt.
add_library(scuttle_cluster_sim
  ${CMAKE_CURRENT_LIST_DIR}/cluster_checker.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_cli.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_faults.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_net.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_sim.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_sim_faults.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_sim_report.cc
  ${CMAKE_CURRENT_LIST_DIR}/cluster_sim_workload.cc
  ${CMAKE_CURRENT_LIST_DIR}/sharded_sim.cc)
target_link_libraries(scuttle_cluster_sim
  PUBLIC scuttle_engine scuttle_sim scuttle_cli_flags absl::flat_hash_map absl::status absl::statusor
  PRIVATE absl::strings absl::str_format nlohmann_json::nlohmann_json)

target_link_libraries(scuttle-sim PRIVATE scuttle_cluster_sim)

add_executable(cluster_sim_test ${CMAKE_SOURCE_DIR}/tests/sim/cluster_sim_test.cc)
target_link_libraries(cluster_sim_test
  PRIVATE scuttle_cluster_sim absl::flags_reflection nlohmann_json::nlohmann_json GTest::gtest_main)
gtest_discover_tests(cluster_sim_test DISCOVERY_TIMEOUT 60)

# Gossip security in the simulator: key rotation on 100 lossy nodes, a wrong-key node.
add_executable(security_sim_test ${CMAKE_SOURCE_DIR}/tests/sim/security_sim_test.cc)
target_link_libraries(security_sim_test PRIVATE scuttle_cluster_sim GTest::gtest_main)
gtest_discover_tests(security_sim_test DISCOVERY_TIMEOUT 60)

# zstd compression negotiated per peer: a mixed cluster, compressed + sealed, corruption.
add_executable(compression_sim_test ${CMAKE_SOURCE_DIR}/tests/sim/compression_sim_test.cc)
target_link_libraries(compression_sim_test PRIVATE scuttle_cluster_sim GTest::gtest_main)
gtest_discover_tests(compression_sim_test DISCOVERY_TIMEOUT 60)

# Engine shards (issue #18): several engines per simulated node, 200 nodes x 4 shards.
add_executable(sharded_sim_test ${CMAKE_SOURCE_DIR}/tests/sim/sharded_sim_test.cc)
target_link_libraries(sharded_sim_test PRIVATE scuttle_cluster_sim GTest::gtest_main)
gtest_discover_tests(sharded_sim_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)

# `scuttle-sim cluster --shards N` through the command line: totals and per-shard reports.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME sim_cli_shards
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/sim/sharded_cli_test.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(sim_cli_shards PROPERTIES TIMEOUT 300)
endif()
