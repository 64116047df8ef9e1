// The starting config of the simulator's scenario tests (cluster_sim_test, sharded_sim_test):
// one place for the workload they share, each test file picking its size.
#ifndef SCUTTLE_TESTS_SIM_SCENARIO_CONFIG_H_
#define SCUTTLE_TESTS_SIM_SCENARIO_CONFIG_H_

#include <cstdint>

#include "sim/cluster_sim.h"

namespace scuttle::sim {

// `nodes` nodes for `rounds` gossip rounds, every owner writing `keys` keys at `write_rate`
// writes a round across the cluster, 30% of them deletes; no fault.
inline ClusterSimConfig ScenarioConfig(uint64_t seed, uint32_t nodes, uint32_t rounds,
                                       uint32_t keys, double write_rate) {
  ClusterSimConfig c;
  c.seed = seed;
  c.nodes = nodes;
  c.rounds = rounds;
  c.keys = keys;
  c.write_rate = write_rate;
  c.delete_ratio = 0.3;
  return c;
}

}  // namespace scuttle::sim

#endif  // SCUTTLE_TESTS_SIM_SCENARIO_CONFIG_H_
