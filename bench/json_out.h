// Where a bench binary's JSON document goes: --out=FILE, or stdout when empty. A file that
// cannot be written is an error (exit 1), never a silently missing result.
#ifndef SCUTTLE_BENCH_JSON_OUT_H_
#define SCUTTLE_BENCH_JSON_OUT_H_

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "nlohmann/json.hpp"

namespace scuttle::bench {

// Returns the exit code: 0 written, 1 the file could not be written.
inline int WriteJson(const nlohmann::json& doc, const std::string& path) {
  const std::string text = doc.dump(1);
  if (path.empty()) {
    std::cout << text << "\n";
    return 0;
  }
  std::ofstream f(path);
  f << text << "\n";
  f.close();
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 1;
  }
  return 0;
}

}  // namespace scuttle::bench

#endif  // SCUTTLE_BENCH_JSON_OUT_H_
