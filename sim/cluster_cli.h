// `scuttle-sim cluster`: runs the deterministic cluster simulator (sim/cluster_sim.h) and
// reports invariant_violations, converged, rounds_to_converge, bytes_per_node_per_round,
// packets, wall time and peak memory, as text or JSON (--json). Bad flags: a message on
// stderr and exit code 2. Exit code 1 when any invariant was violated.
//
//   scuttle-sim cluster --nodes=100 --seed=7 --rounds=120 --loss_pct=10 --dup_pct=5 --reorder
//       --partition_at_round=20 --heal_at_round=40 --crash_pct=1 --max_packet_bytes=1400 --json
//   scuttle-sim cluster --soak_seeds=500 --nodes=10   # 500 consecutive seeds, random fault mixes
//   scuttle-sim cluster --shards=4 --nodes=200 --loss_pct=5 --crash_pct=1 --json
//       # every node runs 4 engine shards (sim/sharded_sim.h): totals, then a report per
//       # shard; exit 1 also when a shard other than 0 suspected a node by itself
#ifndef SCUTTLE_SIM_CLUSTER_CLI_H_
#define SCUTTLE_SIM_CLUSTER_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "sim/cluster_sim.h"

namespace scuttle::sim {

// Reads the command's absl flags (defined in sim/cluster_cli.cc), checks them and runs.
// Output goes to `out`, diagnostics to `err`; returns the exit code.
int ClusterCommand(std::ostream& out, std::ostream& err);
// The flags ClusterCommand reads, for cli::ParseFlagsOrExit.
std::vector<std::string> ClusterFlags();

// One "fault mix" drawn from a seed: loss 0-30%, duplication, reordering, a partition,
// crashes, small packets, short tombstone grace. The sweep test and --soak_seeds use it.
ClusterSimConfig RandomFaultMix(uint64_t seed, uint32_t nodes, uint32_t rounds);

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_CLI_H_
