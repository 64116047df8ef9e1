#include "node/data_dir.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {
namespace {

constexpr char kMagic[8] = {'S', 'C', 'U', 'T', 'S', 'T', 'A', 'T'};
constexpr uint32_t kFormat = 1;
constexpr size_t kHashBytes = crypto_generichash_BYTES;  // 32
constexpr size_t kHeaderBytes = sizeof(kMagic) + 4 + 8 + kHashBytes;

absl::Status Errno(const std::string& what) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(what, ": ", std::strerror(errno)));
}

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the build targets little-endian hosts (x86-64, arm64)
  out->append(b, sizeof(T));
}

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  template <typename T>
  bool Get(T* v) {
    if (s_.size() < sizeof(T)) return false;
    std::memcpy(v, s_.data(), sizeof(T));
    s_.remove_prefix(sizeof(T));
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (s_.size() < n) return false;
    out->assign(s_.data(), n);
    s_.remove_prefix(n);
    return true;
  }
  bool done() const { return s_.empty(); }

 private:
  std::string_view s_;
};

void Hash(std::string_view payload, unsigned char* out) {
  crypto_generichash(out, kHashBytes, reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size(), nullptr, 0);
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync " + path);
}

}  // namespace

absl::Status PrepareDataDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir " + dir);
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return Errno("data_dir " + dir);
  return absl::OkStatus();
}

absl::Status WriteState(const std::string& dir, const PersistedState& st) {
  std::string payload;
  Put<uint64_t>(&payload, st.generation);
  Put<int64_t>(&payload, st.written_unix_us);
  Put<uint32_t>(&payload, static_cast<uint32_t>(st.keys.size()));
  for (const PersistedKey& k : st.keys) {
    Put<uint32_t>(&payload, static_cast<uint32_t>(k.key.size()));
    Put<uint32_t>(&payload, static_cast<uint32_t>(k.value.size()));
    Put<uint64_t>(&payload, k.version);
    Put<int64_t>(&payload, k.expires_unix_us);
    payload += k.key;
    payload += k.value;
  }
  Put<uint32_t>(&payload, static_cast<uint32_t>(st.members.size()));
  for (const std::string& m : st.members) {
    Put<uint16_t>(&payload, static_cast<uint16_t>(m.size()));
    payload += m;
  }
  std::string file(kMagic, sizeof(kMagic));
  Put<uint32_t>(&file, kFormat);
  Put<uint64_t>(&file, payload.size());
  unsigned char hash[kHashBytes];
  Hash(payload, hash);
  file.append(reinterpret_cast<const char*>(hash), kHashBytes);
  file += payload;

  const std::string path = dir + "/" + kStateFileName;
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open " + tmp);
  absl::Status s = WriteAll(fd, file, tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Errno("fsync " + tmp);
  ::close(fd);
  if (!s.ok()) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename " + tmp);
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::optional<PersistedState>> ReadState(const std::string& dir,
                                                        uint64_t max_file_bytes) {
  const std::string path = dir + "/" + kStateFileName;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return Errno("open " + path);
  }
  std::string data;
  char buf[1 << 16];
  absl::Status err;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = Errno("read " + path);
      break;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_file_bytes) {
      err = absl::DataLossError(absl::StrCat(path, ": larger than ", max_file_bytes, " bytes"));
      break;
    }
  }
  ::close(fd);
  if (!err.ok()) return err;
  auto corrupt = [&](std::string_view why) {
    return absl::DataLossError(absl::StrCat(path, ": ", AV(why), " (", data.size(), " bytes)"));
  };
  if (data.size() < kHeaderBytes) return corrupt("truncated header");
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) return corrupt("bad magic");
  Reader h(std::string_view(data).substr(sizeof(kMagic), 12));
  uint32_t format = 0;
  uint64_t len = 0;
  h.Get(&format);
  h.Get(&len);
  if (format != kFormat) return corrupt(absl::StrCat("unknown format ", format));
  if (len != data.size() - kHeaderBytes) return corrupt("torn (length mismatch)");
  const std::string_view payload = std::string_view(data).substr(kHeaderBytes);
  unsigned char hash[kHashBytes];
  Hash(payload, hash);
  if (sodium_memcmp(hash, data.data() + kHeaderBytes - kHashBytes, kHashBytes) != 0) {
    return corrupt("checksum mismatch");
  }
  PersistedState st;
  Reader r(payload);
  uint32_t nkeys = 0;
  if (!r.Get(&st.generation) || !r.Get(&st.written_unix_us) || !r.Get(&nkeys)) {
    return corrupt("short payload");
  }
  for (uint32_t i = 0; i < nkeys; ++i) {
    PersistedKey k;
    uint32_t klen = 0, vlen = 0;
    if (!r.Get(&klen) || !r.Get(&vlen) || !r.Get(&k.version) || !r.Get(&k.expires_unix_us) ||
        !r.Bytes(klen, &k.key) || !r.Bytes(vlen, &k.value)) {
      return corrupt("short key record");
    }
    st.keys.push_back(std::move(k));
  }
  uint32_t nmembers = 0;
  if (!r.Get(&nmembers)) return corrupt("short member list");
  for (uint32_t i = 0; i < nmembers; ++i) {
    uint16_t mlen = 0;
    std::string m;
    if (!r.Get(&mlen) || !r.Bytes(mlen, &m)) return corrupt("short member record");
    st.members.push_back(std::move(m));
  }
  if (!r.done()) return corrupt("trailing bytes");
  return std::optional<PersistedState>(std::move(st));
}

}  // namespace scuttle
