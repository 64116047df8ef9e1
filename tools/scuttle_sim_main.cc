// scuttle-sim: simulators of scuttle's epidemic protocols. `scuttle-sim <command> [flags]`;
// each command is one function in sim/ taking its own flags.
#include <iostream>
#include <span>
#include <string_view>
#include <vector>

#include "sim/cluster_cli.h"
#include "sim/demers.h"

namespace {

using CommandFn = int (*)(std::span<const std::string_view> args, std::ostream& out,
                          std::ostream& err);

struct Command {
  std::string_view name;
  CommandFn run;
  std::string_view summary;
};

constexpr Command kCommands[] = {
    {"demers", scuttle::sim::DemersCommand,
     "rumor mongering of one update (Demers et al. 1987, Tables 1 and 2)"},
    {"antientropy", scuttle::sim::AntiEntropyCommand,
     "anti-entropy convergence per cycle vs the pull/push laws"},
    {"cluster", scuttle::sim::ClusterCommand, "engines on a faulty simulated network, checked"},
};

void Usage(std::ostream& os) {
  os << "usage: scuttle-sim <command> [flags]   (scuttle-sim <command> --help)\ncommands:\n";
  for (const Command& c : kCommands) os << "  " << c.name << "\t" << c.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage(std::cerr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") {
    Usage(std::cout);
    return 0;
  }
  const std::vector<std::string_view> args(argv + 2, argv + argc);
  for (const Command& c : kCommands) {
    if (c.name == name) return c.run(args, std::cout, std::cerr);
  }
  std::cerr << "scuttle-sim: unknown command '" << name << "'\n";
  Usage(std::cerr);
  return 2;
}
