// Authenticated encryption of whole datagrams (DESIGN §8 "Security"), sans-IO.
//
// A sealed datagram keeps the 16-byte PacketHeader in clear (flags gain kFlagEncrypted;
// payload_bytes stays the plaintext payload length), encrypts the payload in place and
// appends a 40-byte trailer:
//
//   header(16) | ciphertext(payload_bytes) | key_id u32 | cipher u8 | 0 0 0 |
//                                            sender_id u64 | counter u64 | tag(16)
//
// Associated data = the header plus the first 24 trailer bytes, so every clear byte is
// authenticated (a flipped flag, key id, sender id or counter fails the tag).
//
// Nonces never repeat under one key: `sender_id` is drawn at random once per engine
// incarnation and `counter` rises by one per sealed datagram. XChaCha20-Poly1305's 24-byte
// nonce holds both whole (sender_id | counter | 0). AES-256-GCM has 12 bytes: the low 32
// bits of sender_id | counter. Two incarnations sharing those 32 bits would also need
// overlapping counter ranges to reuse a nonce, and counters start at a random 62-bit value
// (Engine), so for 2^16 incarnations of one key and 2^40 datagrams each the chance is
// about 2^-25; the full 64-bit sender_id is still authenticated (AD) and keys the replay
// window.
//
// Cipher choice (measured on this repo's CI CPU, libsodium 1.0.18, see bench/README.md):
// AES-256-GCM sealed 1,400 B in ~1.0 µs against ~1.65 µs for XChaCha20-Poly1305, and 64 B
// in 0.17 µs against 0.47 µs, so AES-256-GCM is the default where the CPU has AES-NI and
// CLMUL (libsodium has no portable AES-GCM); elsewhere XChaCha20-Poly1305. The cipher rides
// in each datagram and every node opens both ciphers it can, so a cluster whose members
// differ in hardware sets --encrypt_cipher=xchacha20poly1305 everywhere.
//
// AES-256-GCM has two implementations here: libsodium 1.0.18's (~1.7 GB/s on this CPU, no
// fixed cost to speak of) and OpenSSL 3's EVP (stitched AES-NI/VAES with carry-less GHASH,
// ~4–6 GB/s, plus a fixed ~0.1–0.2 µs per call for provider dispatch). Both compute the same
// standard GCM over the same 12-byte nonce and associated data, so the choice is made per
// datagram and is invisible on the wire: payloads of kEvpMinPayload bytes or more go
// through EVP, smaller ones through libsodium (the threshold comes from bench/scuttle_seal,
// see bench/README.md). EVP contexts are cached per thread and per key inside seal.cc, so
// a Keyring stays a plain value that any thread may read.
#ifndef SCUTTLE_WIRE_SEAL_H_
#define SCUTTLE_WIRE_SEAL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace scuttle::wire {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kSealTrailerBytes = 40;
inline constexpr size_t kSealTagBytes = 16;
// Bound on installed keys (a rotation needs two; the rest is operator slack).
inline constexpr size_t kMaxKeys = 16;

enum class Cipher : uint8_t { kAuto = 0, kAes256Gcm = 1, kXChaCha20Poly1305 = 2 };
const char* CipherName(Cipher c);
// "auto", "aes256gcm", "xchacha20poly1305".
absl::StatusOr<Cipher> ParseCipher(std::string_view name);
// False for AES-256-GCM on a CPU without AES-NI + CLMUL. Initializes libsodium.
bool CipherAvailable(Cipher c);
// kAuto resolved: AES-256-GCM when available, else XChaCha20-Poly1305.
Cipher ResolveCipher(Cipher c);

using KeyBytes = std::array<uint8_t, kKeyBytes>;

// One installed key. `id` (on the wire) is the first 4 bytes of the fingerprint, a
// BLAKE2b-256 hash of the key; `fingerprint` is its first 8 bytes in hex, what operators
// see (the key itself never leaves the keyring file and POST /v1/keyring).
struct Key {
  KeyBytes bytes{};
  uint32_t id = 0;
  std::string fingerprint;
  // libsodium's crypto_aead_aes256gcm_state (expanded AES key and GHASH powers), computed
  // once per key so sealing a datagram does no key setup.
  alignas(16) std::array<uint8_t, 512> aes_state{};
  bool aes_ready = false;
};

// Parses 32 bytes of standard base64 (44 characters).
absl::StatusOr<KeyBytes> DecodeKey(std::string_view base64);
std::string EncodeKey(const KeyBytes& key);
// A fresh random key (libsodium's CSPRNG).
KeyBytes GenerateKey();

// The installed keys, one of them primary (Serf's keyring model). A node opens with every
// key and seals with the primary. Value type: the owner copies it to each engine shard.
class Keyring {
 public:
  // File text: one base64 key per line, the primary first; blank lines and '#' comments
  // are ignored. An empty file is an empty keyring (encryption off).
  static absl::StatusOr<Keyring> Parse(std::string_view text);
  // The file text for this keyring (primary first), ending with a newline.
  std::string Serialize() const;

  // AlreadyExists when the key is installed; ResourceExhausted past kMaxKeys;
  // FailedPrecondition when its id collides with another key's. The first key installed
  // into an empty keyring becomes primary.
  absl::Status Install(const KeyBytes& key);
  // `ref` is a base64 key or a fingerprint. NotFound when no installed key matches.
  absl::Status Use(std::string_view ref);
  // FailedPrecondition for the primary (use another key first).
  absl::Status Remove(std::string_view ref);

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }
  // REQUIRES: !empty().
  const Key& primary() const { return keys_[primary_]; }
  const Key* FindById(uint32_t id) const;
  const std::vector<Key>& keys() const { return keys_; }

 private:
  int Find(std::string_view ref) const;
  std::vector<Key> keys_;
  size_t primary_ = 0;
};

// Payloads of at least this many bytes are sealed and opened with OpenSSL's AES-256-GCM.
inline constexpr size_t kEvpMinPayload = 384;

struct SealParams {
  const Key* key = nullptr;
  Cipher cipher = Cipher::kAes256Gcm;  // resolved, available
  uint64_t sender_id = 0;
  uint64_t counter = 0;
};

// Seals the finished datagram buffer[0, len) in place and appends the trailer; returns the
// sealed datagram (len + kSealTrailerBytes bytes at buffer.data()).
// REQUIRES: len >= kHeaderBytes; buffer.size() >= len + kSealTrailerBytes; params.key set.
std::span<const uint8_t> Seal(std::span<uint8_t> buffer, size_t len, const SealParams& params);

// Why a sealed datagram did not open.
enum class OpenError : uint8_t {
  kTruncated,          // shorter than header + trailer, or payload_bytes disagrees
  kBadKey,             // sealed with a key id this keyring does not hold
  kCipherUnavailable,  // unknown cipher byte, or AES-256-GCM on a CPU without it
  kAuthFailed,         // the tag did not verify: wrong key, tampered or corrupted
};

struct Opened {
  // The plaintext datagram in `out`: the header with kFlagEncrypted cleared, then the
  // payload; it decodes like any plaintext datagram.
  std::span<const uint8_t> datagram;
  uint64_t sender_id = 0;
  uint64_t counter = 0;
  uint32_t key_id = 0;
};

// Opens `sealed` (whose header says kFlagEncrypted) into `out` (a single decrypting pass:
// no copy beyond it). On failure `out` holds nothing usable.
// REQUIRES: out.size() >= sealed.size(); out does not overlap sealed.
bool Open(std::span<const uint8_t> sealed, const Keyring& ring, std::span<uint8_t> out,
          Opened* opened, OpenError* error);

}  // namespace scuttle::wire

#endif  // SCUTTLE_WIRE_SEAL_H_
