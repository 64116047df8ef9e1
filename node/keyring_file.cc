#include "node/keyring_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {
namespace {

absl::Status Errno(const std::string& what) {
  const int e = errno;
  const std::string msg = absl::StrCat(what, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EACCES || e == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

absl::StatusOr<std::string> ReadPrivate(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno(path);
    ::close(fd);
    return s;
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return absl::PermissionDeniedError(absl::StrCat(
        path, " is accessible by group or others (mode ", mode,
        "); it holds secrets: chmod 600 it"));
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (1 << 20)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, " is over 1 MiB"));
    }
  }
  absl::Status s = n < 0 ? Errno(path) : absl::OkStatus();
  ::close(fd);
  if (!s.ok()) return s;
  return text;
}

}  // namespace

absl::StatusOr<wire::Keyring> LoadKeyringFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadPrivate(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<wire::Keyring> ring = wire::Keyring::Parse(*text);
  if (!ring.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", ring.status().message()));
  }
  return ring;
}

absl::Status WriteKeyringFile(const std::string& path, const wire::Keyring& ring) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(tmp);
  const std::string text = ring.Serialize();
  size_t off = 0;
  absl::Status s;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      s = Errno(tmp);
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (s.ok() && ::fchmod(fd, 0600) != 0) s = Errno(tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Errno(tmp);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Errno(path);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename itself must survive a crash: sync the directory.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadSecretFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadPrivate(path);
  if (!text.ok()) return text.status();
  std::string secret(SV(absl::StripAsciiWhitespace(AV(*text))));
  if (secret.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return secret;
}

}  // namespace scuttle
