// scuttled's --data_dir runtime (node/data_dir.h has the file format): loads the saved
// state before the node starts, restores the node's own keys under its new generation,
// adds the saved members to the seeds, and rewrites the file every sync interval when
// the node's keys or members changed, and once more at shutdown.
//
// Durability: a write acknowledged by the API is on disk within --data_sync_interval (and
// at a graceful stop); a crash (kill -9, power loss) loses at most that window, never
// the file: the previous complete state stays until the new one is renamed over it.
#ifndef SCUTTLE_NODE_PERSISTER_H_
#define SCUTTLE_NODE_PERSISTER_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "node/node.h"
#include "node/data_dir.h"

namespace scuttle {

class Persister {
 public:
  static constexpr size_t kMaxSavedMembers = 64;
  // Bound on the state file read at start (keys x (key + value) is bounded by flags).
  static constexpr uint64_t kMaxFileBytes = uint64_t{16} << 30;

  Persister(std::string dir, absl::Duration interval);
  ~Persister();

  // Before Node::Start: reads the file. A corrupt file is logged as an error and renamed
  // aside (state.corrupt.UNIXTIME); the node then starts empty. Returns the saved members'
  // addresses (to add to the seeds).
  std::vector<std::string> Load();
  // After Node::Start, before serving: writes the loaded keys into the node (TTLs keep
  // their wall-clock deadline; already expired ones are skipped). Then starts the sync
  // thread.
  void Restore(Node* node);
  // Final write, then stops the thread. Call while the node still runs.
  void Stop();

 private:
  void Loop();
  void SyncOnce();

  const std::string dir_;
  const absl::Duration interval_;
  std::optional<PersistedState> loaded_;
  Node* node_ = nullptr;
  PersistedState last_;  // last written (generation/time fields ignored in comparisons)
  bool have_last_ = false;
  bool failing_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace scuttle

#endif  // SCUTTLE_NODE_PERSISTER_H_
