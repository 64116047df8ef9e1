// --data_dir: what a restarted scuttled brings back (issue: survives restarts). One file,
// DATA_DIR/state, rewritten whole and crash-safely (write a temporary file, fsync it,
// rename it over the old one, fsync the directory), so a reader sees either the previous
// complete state or the new one, never a mix. The file carries a BLAKE2b checksum of its
// contents (libsodium): a torn or corrupt file is reported and never loaded, not even in
// part.
//
// Layout (little-endian): "SCUTSTAT" | u32 format (1) | u64 payload bytes | 32-byte
// BLAKE2b of the payload | payload = u64 generation | u64 written_unix_us | u32 keys,
// each: u32 key bytes, u32 value bytes, u64 version, i64 expires_unix_us (0 = no TTL),
// key, value | u32 members, each: u16 bytes, "ip:port".
#ifndef SCUTTLE_NODE_DATA_DIR_H_
#define SCUTTLE_NODE_DATA_DIR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace scuttle {

struct PersistedKey {
  std::string key;
  std::string value;
  uint64_t version = 0;          // in the generation that wrote it
  int64_t expires_unix_us = 0;   // wall-clock TTL deadline; 0 = none
};

struct PersistedState {
  uint64_t generation = 0;       // of the node that wrote it
  int64_t written_unix_us = 0;
  std::vector<PersistedKey> keys;
  std::vector<std::string> members;  // gossip addresses of the other known members
};

inline constexpr const char* kStateFileName = "state";

// Creates dir if missing; fails when it cannot be written.
absl::Status PrepareDataDir(const std::string& dir);
absl::Status WriteState(const std::string& dir, const PersistedState& state);
// nullopt: no state file (a first start). DataLossError: the file is torn or corrupt;
// it is left in place for inspection (the caller renames it aside).
absl::StatusOr<std::optional<PersistedState>> ReadState(const std::string& dir,
                                                        uint64_t max_file_bytes);

}  // namespace scuttle

#endif  // SCUTTLE_NODE_DATA_DIR_H_
