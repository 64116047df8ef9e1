#include "io/xdp_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/socket.h"
#include "io/xdp/scuttle_xdp_config.h"
#include "spdlog/spdlog.h"

extern "C" {
extern const unsigned char scuttle_xdp_object_begin[];
extern const unsigned char scuttle_xdp_object_end[];
}

namespace scuttle::io {
namespace {

// libxdp and libbpf print to stderr by default; route them to the log (debug: their
// "falling back to a single program" notes are expected without a bpffs).
int LogLibxdp(enum libxdp_print_level level, const char* fmt, va_list args) {
  char line[512];
  std::vsnprintf(line, sizeof(line), fmt, args);
  std::string_view s(line);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (level == LIBXDP_WARN) {
    spdlog::debug("libxdp: {}", s);
  } else {
    spdlog::trace("libxdp: {}", s);
  }
  return 0;
}
int LogLibbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
  return LogLibxdp(level == LIBBPF_WARN ? LIBXDP_WARN : LIBXDP_DEBUG, fmt, args);
}

void QuietLibraries() {
  static const bool done = [] {
    libxdp_set_print(LogLibxdp);
    libbpf_set_print(LogLibbpf);
    return true;
  }();
  (void)done;
}

std::string XdpError(int err) {
  char buf[256];
  libxdp_strerror(err, buf, sizeof(buf));
  return buf;
}

// The config of an attached program of ours, read through its map ids.
bool ReadConfig(int prog_fd, scuttle_xdp_config* out) {
  uint32_t map_ids[8] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 8;
  info.map_ids = reinterpret_cast<uint64_t>(map_ids);
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return false;
  for (uint32_t i = 0; i < std::min<uint32_t>(info.nr_map_ids, 8); ++i) {
    ScopedFd map(bpf_map_get_fd_by_id(map_ids[i]));
    if (!map.valid()) continue;
    bpf_map_info minfo{};
    uint32_t mlen = sizeof(minfo);
    if (bpf_obj_get_info_by_fd(map.get(), &minfo, &mlen) != 0) continue;
    if (std::strcmp(minfo.name, "scuttle_cfg") != 0) continue;
    const uint32_t zero = 0;
    return bpf_map_lookup_elem(map.get(), &zero, out) == 0;
  }
  return false;
}

bool IsOursAndStale(xdp_program* p, uint16_t port) {
  if (std::strcmp(xdp_program__name(p), SCUTTLE_XDP_PROG_NAME) != 0) return false;
  scuttle_xdp_config cfg{};
  if (!ReadConfig(xdp_program__fd(p), &cfg)) return false;
  if (cfg.port_be == htons(port)) return true;
  return cfg.owner_pid != 0 && ::kill(static_cast<pid_t>(cfg.owner_pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

const char* XdpModeName(XdpMode mode) {
  switch (mode) {
    case XdpMode::kAuto:
      return "auto";
    case XdpMode::kDrv:
      return "drv";
    case XdpMode::kSkb:
      return "skb";
  }
  return "?";
}

int XdpProgram::RemoveStale(int ifindex, uint16_t port) {
  QuietLibraries();
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (mp == nullptr || libxdp_get_error(mp) != 0) return 0;
  int removed = 0;
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main != nullptr && IsOursAndStale(main, port) && xdp_multiprog__detach(mp) == 0) {
      removed = 1;
    }
  } else {
    const auto mode = xdp_multiprog__attach_mode(mp);
    std::vector<xdp_program*> stale;
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p != nullptr;
         p = xdp_multiprog__next_prog(p, mp)) {
      if (IsOursAndStale(p, port)) stale.push_back(p);
    }
    for (xdp_program* p : stale) {
      if (xdp_program__detach(p, ifindex, mode, 0) == 0) ++removed;
    }
  }
  xdp_multiprog__close(mp);
  if (removed > 0) {
    spdlog::warn("io: removed {} stale XDP program(s) of ours from ifindex {} (port {})", removed,
                 ifindex, port);
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<XdpProgram>> XdpProgram::Attach(const XdpProgramOptions& o) {
  QuietLibraries();
  RemoveStale(o.ifindex, o.port);

  std::unique_ptr<XdpProgram> self(new XdpProgram());
  self->ifindex_ = o.ifindex;
  self->netns_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  LIBBPF_OPTS(bpf_object_open_opts, open_opts, .object_name = "scuttle_xdp");
  bpf_object* obj = bpf_object__open_mem(
      scuttle_xdp_object_begin,
      static_cast<size_t>(scuttle_xdp_object_end - scuttle_xdp_object_begin), &open_opts);
  if (obj == nullptr || libbpf_get_error(obj) != 0) {
    return absl::InternalError("io: the embedded XDP object does not open (build problem)");
  }
  DECLARE_LIBXDP_OPTS(xdp_program_opts, prog_opts, .obj = obj, .prog_name = "scuttle_xdp");
  self->prog_ = xdp_program__create(&prog_opts);
  if (self->prog_ == nullptr || libxdp_get_error(self->prog_) != 0) {
    self->prog_ = nullptr;
    bpf_object__close(obj);
    return absl::InternalError("io: libxdp refused the embedded XDP program");
  }

  const std::string where = absl::StrCat(o.ifname, " (ifindex ", o.ifindex, ")");
  int err = 0;
  XdpMode used = o.mode;
  if (o.mode != XdpMode::kSkb) {
    err = xdp_program__attach(self->prog_, o.ifindex, XDP_MODE_NATIVE, 0);
    used = XdpMode::kDrv;
    if (err != 0 && o.mode == XdpMode::kAuto && err != -EPERM) {
      spdlog::info("io: native XDP refused on {} ({}); using generic (skb) mode", where,
                   XdpError(err));
      used = XdpMode::kSkb;
      err = xdp_program__attach(self->prog_, o.ifindex, XDP_MODE_SKB, 0);
    }
  } else {
    err = xdp_program__attach(self->prog_, o.ifindex, XDP_MODE_SKB, 0);
  }
  if (err != 0) {
    std::string why = XdpError(err);
    if (err == -EPERM || err == -EACCES) {
      why += "; loading and attaching XDP programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)";
    } else if (used == XdpMode::kDrv) {
      why += "; the driver has no native XDP (try --xdp_mode=skb)";
    } else if (err == -EEXIST || err == -EBUSY) {
      why += "; another XDP program is attached and no bpffs at /sys/fs/bpf lets libxdp share the interface";
    }
    return absl::FailedPreconditionError(absl::StrCat("io: attaching the XDP program to ", where,
                                                      " in ", XdpModeName(used), " mode: ", why));
  }
  self->mode_ = used;

  bpf_object* loaded = xdp_program__bpf_obj(self->prog_);
  bpf_map* xsks = bpf_object__find_map_by_name(loaded, "scuttle_xsks");
  bpf_map* cfg = bpf_object__find_map_by_name(loaded, "scuttle_cfg");
  bpf_map* counts = bpf_object__find_map_by_name(loaded, "scuttle_counts");
  if (xsks == nullptr || cfg == nullptr || counts == nullptr) {
    return absl::InternalError("io: the XDP program's maps are missing (build problem)");
  }
  self->xsk_map_fd_ = bpf_map__fd(xsks);
  self->counts_fd_ = bpf_map__fd(counts);
  const scuttle_xdp_config config{.port_be = htons(o.port),
                                  .pad = 0,
                                  .queue = o.queue,
                                  .owner_pid = static_cast<uint32_t>(::getpid()),
                                  .max_frame_bytes = o.max_frame_bytes};
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(cfg), &zero, &config, BPF_ANY) != 0) {
    return ErrnoStatus(errno, "io: writing the XDP program's config");
  }
  return self;
}

// Runs fn inside the network namespace `netns_fd` (when the calling thread is elsewhere).
template <typename Fn>
static void InNetns(int netns_fd, Fn fn) {
  ScopedFd here(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  struct stat a {}, b {};
  const bool same = netns_fd < 0 || !here.valid() || (::fstat(netns_fd, &a) == 0 &&
                                                      ::fstat(here.get(), &b) == 0 &&
                                                      a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  if (same || ::setns(netns_fd, CLONE_NEWNET) != 0) {
    fn();
    return;
  }
  fn();
  (void)::setns(here.get(), CLONE_NEWNET);
}

XdpProgram::~XdpProgram() {
  if (prog_ != nullptr) {
    bpf_object* obj = xdp_program__bpf_obj(prog_);
    InNetns(netns_fd_, [&] {
      const int err = xdp_program__detach(
          prog_, ifindex_, mode_ == XdpMode::kSkb ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
      if (err != 0) spdlog::warn("io: detaching the XDP program: {}", XdpError(err));
    });
    xdp_program__close(prog_);
    bpf_object__close(obj);
  }
  if (netns_fd_ >= 0) ::close(netns_fd_);
}

uint32_t XdpProgram::program_id() const { return xdp_program__id(prog_); }

uint64_t XdpProgram::Count(uint32_t index) const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0 || cpus > 4096) return 0;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(counts_fd_, &index, per_cpu.data()) != 0) return 0;
  uint64_t sum = 0;
  for (uint64_t v : per_cpu) sum += v;
  return sum;
}

}  // namespace scuttle::io
