// `scuttle-sim cluster`: runs the deterministic cluster simulator (sim/cluster_sim.h) and
// reports invariant_violations, converged, rounds_to_converge, bytes_per_node_per_round,
// packets, wall time and peak memory, as text or JSON (--json). Bad flags: a message on
// stderr and exit code 2. Exit code 1 when any invariant was violated.
//
//   scuttle-sim cluster --nodes 100 --seed 7 --rounds 120 --loss 0.1 --dup 0.05 --reorder
//       --partition-at 20 --heal-at 40 --crash-rate 0.01 --max-packet-bytes 1400 --json
//   scuttle-sim cluster --soak 500 ...    # 500 consecutive seeds, random fault mixes
#ifndef SCUTTLE_SIM_CLUSTER_CLI_H_
#define SCUTTLE_SIM_CLUSTER_CLI_H_

#include <iosfwd>
#include <span>
#include <string_view>

#include "sim/cluster_sim.h"

namespace scuttle::sim {

// argv[0] is the command name ("cluster"); flags follow.
int RunClusterCommand(int argc, char** argv);
// The scuttle-sim dispatcher's signature (tools/scuttle_sim_main.cc): flags only.
int ClusterCommand(std::span<const std::string_view> args, std::ostream& out, std::ostream& err);

// One "fault mix" drawn from a seed: loss 0-30%, duplication, reordering, a partition,
// crashes, small packets, short tombstone grace. The sweep test and --soak use it.
ClusterSimConfig RandomFaultMix(uint64_t seed, uint32_t nodes, uint32_t rounds);

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_CLI_H_
