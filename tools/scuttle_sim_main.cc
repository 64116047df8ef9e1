// scuttle-sim: simulators of scuttle's epidemic protocols. `scuttle-sim <command> [flags]`;
// each command is one function in sim/ reading its own absl flags. The flags of every
// command live in one process, so a flag of another command is refused (sim/flags.h).
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/cluster_cli.h"
#include "sim/demers.h"
#include "sim/flags.h"
#include "wire/absl_compat.h"

namespace {

struct Command {
  std::string_view name;
  int (*run)(std::ostream& out, std::ostream& err);
  std::vector<std::string> (*flags)();
  std::string_view summary;
};

const Command kCommands[] = {
    {"demers", scuttle::sim::DemersCommand, scuttle::sim::DemersFlags,
     "rumor mongering of one update (Demers et al. 1987, Tables 1 and 2)"},
    {"antientropy", scuttle::sim::AntiEntropyCommand, scuttle::sim::AntiEntropyFlags,
     "anti-entropy convergence per cycle vs the pull/push laws"},
    {"cluster", scuttle::sim::ClusterCommand, scuttle::sim::ClusterFlags,
     "engines on a faulty simulated network, checked"},
};

void Usage(std::ostream& os) {
  os << "usage: scuttle-sim <command> [flags]   (scuttle-sim <command> --help)\ncommands:\n";
  for (const Command& c : kCommands) os << "  " << c.name << "\t" << c.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage(std::cerr);
    return scuttle::cli::kExitBadFlags;
  }
  const std::string_view name = argv[1];
  if (name == "help" || name.starts_with("--help") || name == "-h") {
    Usage(std::cout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (c.name != name) continue;
    const std::string command = absl::StrCat("scuttle-sim ", scuttle::AV(c.name));
    // The command's flags follow it: argv without the command name.
    std::vector<char*> args = {argv[0]};
    args.insert(args.end(), argv + 2, argv + argc);
    scuttle::cli::ParseFlagsOrExit(
        static_cast<int>(args.size()), args.data(), command,
        absl::StrCat("usage: ", command, " [flags]\n  ", scuttle::AV(c.summary)), c.flags());
    return c.run(std::cout, std::cerr);
  }
  std::cerr << "scuttle-sim: unknown command '" << name << "'\n";
  Usage(std::cerr);
  return scuttle::cli::kExitBadFlags;
}
