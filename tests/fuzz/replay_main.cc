// fuzz_corpus_replay: runs LLVMFuzzerTestOneInput over every file of the seed corpus and
// over deterministic mutations of each, without libFuzzer (so gcc builds and plain ctest runs
// exercise the fuzz target too). A broken invariant aborts inside the target.
//
//   fuzz_corpus_replay [--mutations=N] [--seed=S] <file-or-dir>...
//
// Mutations are libFuzzer-style byte edits (bit flips, interesting integers, small
// arithmetic on aligned words — which lands on versions, offsets and lengths —, chunk
// erase/insert/copy, truncation), stacked 1-4 deep, each optionally followed by fixing the
// header's payload length so the datagram gets past the length check into verification.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "engine/rng.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Sanitizer runtimes die through their own exit path, not abort(): hook it when present.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t kHeaderBytes = 16;
constexpr size_t kPayloadLenOffset = 8;  // wire::PacketHeader::payload_bytes

void FixLength(Bytes& b) {
  if (b.size() < kHeaderBytes) return;
  const uint32_t n = static_cast<uint32_t>(b.size() - kHeaderBytes);
  std::memcpy(b.data() + kPayloadLenOffset, &n, sizeof(n));
}

template <typename T>
void AddToWord(Bytes& b, size_t pos, int64_t delta) {
  T v;
  std::memcpy(&v, b.data() + pos, sizeof(T));
  v = static_cast<T>(v + static_cast<T>(delta));
  std::memcpy(b.data() + pos, &v, sizeof(T));
}

void MutateOnce(Bytes& b, scuttle::Rng& rng) {
  static constexpr uint64_t kInteresting[] = {
      0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 64, 65, 1024, 1025,
      65507, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, UINT64_MAX, UINT64_MAX - 1,
      0x7fffffffffffffff};
  const size_t n = b.size();
  switch (rng.Below(9)) {
    case 0:  // flip one bit
      if (n > 0) b[rng.Below(n)] ^= static_cast<uint8_t>(1u << rng.Below(8));
      break;
    case 1:  // random byte
      if (n > 0) b[rng.Below(n)] = static_cast<uint8_t>(rng());
      break;
    case 2: {  // interesting integer of width 1/2/4/8
      const size_t w = size_t{1} << rng.Below(4);
      if (n < w) break;
      const uint64_t v = kInteresting[rng.Below(std::size(kInteresting))];
      std::memcpy(b.data() + rng.Below(n - w + 1), &v, w);
      break;
    }
    case 3: {  // small arithmetic on an aligned word (versions, offsets, lengths, counts)
      const int64_t d = static_cast<int64_t>(rng.Below(33)) - 16;
      if (rng.Chance(0.5) && n >= 8) {
        AddToWord<uint64_t>(b, rng.Below(n / 8) * 8, d);
      } else if (n >= 4) {
        AddToWord<uint32_t>(b, rng.Below(n / 4) * 4, d);
      }
      break;
    }
    case 4:  // truncate
      if (n > 0) b.resize(rng.Below(n));
      break;
    case 5: {  // erase a chunk
      if (n < 2) break;
      const size_t at = rng.Below(n);
      const size_t len = 1 + rng.Below(std::min<size_t>(n - at, 64));
      b.erase(b.begin() + static_cast<ptrdiff_t>(at), b.begin() + static_cast<ptrdiff_t>(at + len));
      break;
    }
    case 6: {  // insert random bytes
      const size_t at = rng.Below(n + 1);
      const size_t len = 1 + rng.Below(16);
      Bytes ins(len);
      for (uint8_t& c : ins) c = static_cast<uint8_t>(rng());
      b.insert(b.begin() + static_cast<ptrdiff_t>(at), ins.begin(), ins.end());
      break;
    }
    case 7: {  // copy a chunk over another place (duplicates structs/entries)
      if (n < 8) break;
      const size_t len = 1 + rng.Below(std::min<size_t>(n / 2, 64));
      const size_t from = rng.Below(n - len + 1);
      const size_t to = rng.Below(n - len + 1);
      std::memmove(b.data() + to, b.data() + from, len);
      break;
    }
    case 8: {  // zero a 4-byte aligned word (drops flatbuffers offsets/fields)
      if (n >= 4) std::memset(b.data() + rng.Below(n / 4) * 4, 0, 4);
      break;
    }
  }
}

// The input being executed, written out when the target aborts so it can be replayed alone
// (`fuzz_corpus_replay --mutations=0 fuzz-replay-crash.bin`) or fed to the libFuzzer binary.
const Bytes* g_current = nullptr;

void SaveCurrent() {
  if (g_current != nullptr) {
    const int fd = ::open("fuzz-replay-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, g_current->data(), g_current->size());
      (void)ignored;
      ::close(fd);
    }
    static const char kMsg[] = "fuzz_corpus_replay: crashing input saved to fuzz-replay-crash.bin\n";
    ssize_t ignored = ::write(2, kMsg, sizeof(kMsg) - 1);
    (void)ignored;
    g_current = nullptr;
  }
}

void OnCrash(int sig) {
  SaveCurrent();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void OnSanitizerDeath() { SaveCurrent(); }

void Run(const Bytes& b) {
  g_current = &b;
  LLVMFuzzerTestOneInput(b.data(), b.size());
  g_current = nullptr;
}

Bytes ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint64_t HashName(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mutations = 2000;
  uint64_t seed = 1;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind("--mutations=", 0) == 0) {
      mutations = std::strtoull(argv[i] + 12, nullptr, 10);
    } else if (a.rfind("--seed=", 0) == 0) {
      seed = std::strtoull(argv[i] + 7, nullptr, 10);
    } else if (std::filesystem::is_directory(a)) {
      for (const auto& e : std::filesystem::directory_iterator(a)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else {
      files.emplace_back(a);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s [--mutations=N] [--seed=S] <file-or-dir>...\n", argv[0]);
    return 2;
  }
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(OnSanitizerDeath);
  std::signal(SIGABRT, OnCrash);
  std::signal(SIGSEGV, OnCrash);
  size_t runs = 0;
  for (const auto& path : files) {
    const Bytes original = ReadFile(path);
    Run(original);
    ++runs;
    // One deterministic stream per (file name, seed).
    scuttle::Rng rng(HashName(path.filename().string()) ^ seed);
    for (size_t m = 0; m < mutations; ++m) {
      Bytes b = original;
      const uint64_t depth = 1 + rng.Below(4);
      for (uint64_t d = 0; d < depth; ++d) MutateOnce(b, rng);
      if (rng.Chance(0.7)) FixLength(b);
      Run(b);
      ++runs;
    }
  }
  std::printf("fuzz_corpus_replay: %zu files, %zu executions, no invariant broken\n",
              files.size(), runs);
  return 0;
}
