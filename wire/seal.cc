#include "wire/seal.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <array>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle::wire {

namespace {

static_assert(sizeof(crypto_aead_aes256gcm_state) == sizeof(Key::aes_state));
static_assert(crypto_aead_aes256gcm_ABYTES == kSealTagBytes);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == kSealTagBytes);
static_assert(crypto_aead_aes256gcm_KEYBYTES == kKeyBytes);
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kKeyBytes);

constexpr size_t kAdTrailerBytes = kSealTrailerBytes - kSealTagBytes;  // 24
constexpr size_t kAdBytes = kHeaderBytes + kAdTrailerBytes;              // 40

bool SodiumReady() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

crypto_aead_aes256gcm_state* AesState(const Key& k) {
  return reinterpret_cast<crypto_aead_aes256gcm_state*>(const_cast<uint8_t*>(k.aes_state.data()));
}

void Fingerprint(Key* k) {
  uint8_t h[32];
  crypto_generichash(h, sizeof(h), k->bytes.data(), k->bytes.size(), nullptr, 0);
  std::memcpy(&k->id, h, 4);
  static constexpr char kHex[] = "0123456789abcdef";
  k->fingerprint.clear();
  for (int i = 0; i < 8; ++i) {
    k->fingerprint.push_back(kHex[h[i] >> 4]);
    k->fingerprint.push_back(kHex[h[i] & 15]);
  }
}

// Nonce bytes for the cipher (see seal.h): 12 for AES-256-GCM, 24 for XChaCha20-Poly1305.
void MakeNonce(Cipher c, uint64_t sender_id, uint64_t counter, uint8_t nonce[24]) {
  std::memset(nonce, 0, 24);
  if (c == Cipher::kAes256Gcm) {
    const uint32_t low = static_cast<uint32_t>(sender_id);
    std::memcpy(nonce, &low, 4);
    std::memcpy(nonce + 4, &counter, 8);
  } else {
    std::memcpy(nonce, &sender_id, 8);
    std::memcpy(nonce + 8, &counter, 8);
  }
}

// OpenSSL AES-256-GCM contexts (one sealing, one opening) with the key schedule done once,
// cached per thread and keyed by the key's bytes: engines in one thread that hold copies of
// the same keyring share them, and no context is ever used by two threads. Bounded at
// kMaxKeys keys per thread (round-robin replacement); freed, key bytes wiped, at thread exit.
class EvpCache {
 public:
  struct Entry {
    KeyBytes key{};
    uint32_t id = 0;
    EVP_CIPHER_CTX* enc = nullptr;
    EVP_CIPHER_CTX* dec = nullptr;
  };

  ~EvpCache() {
    for (Entry& e : entries_) Clear(&e);
  }

  // The contexts for `k`, or nullptr when OpenSSL refuses the cipher (the caller then uses
  // libsodium).
  const Entry* Get(const Key& k) {
    for (Entry& e : entries_) {
      if (e.enc != nullptr && e.id == k.id && e.key == k.bytes) return &e;
    }
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    Clear(&e);
    EVP_CIPHER_CTX* enc = EVP_CIPHER_CTX_new();
    EVP_CIPHER_CTX* dec = EVP_CIPHER_CTX_new();
    const EVP_CIPHER* aes = EVP_aes_256_gcm();
    const bool ok = enc != nullptr && dec != nullptr &&
                    EVP_EncryptInit_ex(enc, aes, nullptr, k.bytes.data(), nullptr) == 1 &&
                    EVP_DecryptInit_ex(dec, aes, nullptr, k.bytes.data(), nullptr) == 1;
    if (!ok) {
      EVP_CIPHER_CTX_free(enc);
      EVP_CIPHER_CTX_free(dec);
      return nullptr;
    }
    e.key = k.bytes;
    e.id = k.id;
    e.enc = enc;
    e.dec = dec;
    return &e;
  }

 private:
  static void Clear(Entry* e) {
    EVP_CIPHER_CTX_free(e->enc);  // cleanses the key schedule; nullptr is a no-op
    EVP_CIPHER_CTX_free(e->dec);
    e->enc = e->dec = nullptr;
    sodium_memzero(e->key.data(), e->key.size());
  }

  std::array<Entry, kMaxKeys> entries_{};
  size_t next_ = 0;
};

const EvpCache::Entry* EvpFor(const Key& k) {
  static thread_local EvpCache cache;
  return cache.Get(k);
}

// AES-256-GCM through OpenSSL: the same bytes as libsodium's *_afternm calls.
void EvpSeal(const EvpCache::Entry& e, const uint8_t* nonce, const uint8_t* ad, uint8_t* body,
             size_t payload, uint8_t* tag) {
  int n = 0;
  EVP_EncryptInit_ex(e.enc, nullptr, nullptr, nullptr, nonce);
  EVP_EncryptUpdate(e.enc, nullptr, &n, ad, static_cast<int>(kAdBytes));
  EVP_EncryptUpdate(e.enc, body, &n, body, static_cast<int>(payload));
  EVP_EncryptFinal_ex(e.enc, body + n, &n);
  EVP_CIPHER_CTX_ctrl(e.enc, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kSealTagBytes), tag);
}

bool EvpOpen(const EvpCache::Entry& e, const uint8_t* nonce, const uint8_t* ad,
             const uint8_t* body, size_t payload, const uint8_t* tag, uint8_t* dst) {
  int n = 0;
  return EVP_DecryptInit_ex(e.dec, nullptr, nullptr, nullptr, nonce) == 1 &&
         EVP_DecryptUpdate(e.dec, nullptr, &n, ad, static_cast<int>(kAdBytes)) == 1 &&
         EVP_DecryptUpdate(e.dec, dst, &n, body, static_cast<int>(payload)) == 1 &&
         EVP_CIPHER_CTX_ctrl(e.dec, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kSealTagBytes),
                             const_cast<uint8_t*>(tag)) == 1 &&
         EVP_DecryptFinal_ex(e.dec, dst + n, &n) == 1;
}

// The OpenSSL contexts when this AES-256-GCM payload is large enough to be worth them.
const EvpCache::Entry* UseEvp(Cipher c, size_t payload, const Key& k) {
  if (c != Cipher::kAes256Gcm || payload < kEvpMinPayload) return nullptr;
  return EvpFor(k);
}

}  // namespace

const char* CipherName(Cipher c) {
  switch (c) {
    case Cipher::kAuto: return "auto";
    case Cipher::kAes256Gcm: return "aes256gcm";
    case Cipher::kXChaCha20Poly1305: return "xchacha20poly1305";
  }
  return "unknown";
}

absl::StatusOr<Cipher> ParseCipher(std::string_view name) {
  for (Cipher c : {Cipher::kAuto, Cipher::kAes256Gcm, Cipher::kXChaCha20Poly1305}) {
    if (name == CipherName(c)) return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cipher '", AV(name), "': want auto, aes256gcm or xchacha20poly1305"));
}

bool CipherAvailable(Cipher c) {
  if (!SodiumReady()) return false;
  switch (c) {
    case Cipher::kAes256Gcm: return crypto_aead_aes256gcm_is_available() != 0;
    case Cipher::kXChaCha20Poly1305: return true;
    case Cipher::kAuto: return true;
  }
  return false;
}

Cipher ResolveCipher(Cipher c) {
  if (c != Cipher::kAuto) return c;
  return CipherAvailable(Cipher::kAes256Gcm) ? Cipher::kAes256Gcm : Cipher::kXChaCha20Poly1305;
}

absl::StatusOr<KeyBytes> DecodeKey(std::string_view base64) {
  SodiumReady();
  base64 = SV(absl::StripAsciiWhitespace(AV(base64)));
  KeyBytes key{};
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(key.data(), key.size(), base64.data(), base64.size(), nullptr, &len,
                        &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != base64.data() + base64.size() || len != kKeyBytes) {
    return absl::InvalidArgumentError(
        "key: want 32 bytes in standard base64 (44 characters, e.g. from `scuttlectl keys "
        "generate` or `head -c32 /dev/urandom | base64`)");
  }
  return key;
}

std::string EncodeKey(const KeyBytes& key) {
  char out[sodium_base64_ENCODED_LEN(kKeyBytes, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(out, sizeof(out), key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return std::string(out);
}

KeyBytes GenerateKey() {
  SodiumReady();
  KeyBytes k;
  randombytes_buf(k.data(), k.size());
  return k;
}

// ---- Keyring ----------------------------------------------------------------------------

absl::StatusOr<Keyring> Keyring::Parse(std::string_view text) {
  Keyring ring;
  int line_no = 0;
  for (absl::string_view l : absl::StrSplit(AV(text), '\n')) {
    std::string_view line = SV(l);
    ++line_no;
    line = SV(absl::StripAsciiWhitespace(AV(line)));
    if (line.empty() || line[0] == '#') continue;
    absl::StatusOr<KeyBytes> key = DecodeKey(line);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", key.status().message()));
    }
    if (absl::Status s = ring.Install(*key); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", s.message()));
    }
  }
  return ring;
}

std::string Keyring::Serialize() const {
  std::string out = "# scuttle keyring: base64 keys, the primary first\n";
  if (empty()) return out;
  absl::StrAppend(&out, EncodeKey(primary().bytes), "\n");
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (i != primary_) absl::StrAppend(&out, EncodeKey(keys_[i].bytes), "\n");
  }
  return out;
}

absl::Status Keyring::Install(const KeyBytes& bytes) {
  SodiumReady();
  Key k;
  k.bytes = bytes;
  Fingerprint(&k);
  for (const Key& other : keys_) {
    if (other.bytes == bytes) {
      return absl::AlreadyExistsError(absl::StrCat("key ", k.fingerprint, " is installed"));
    }
    if (other.id == k.id) {
      return absl::FailedPreconditionError(
          absl::StrCat("key ", k.fingerprint, " shares its id with ", other.fingerprint));
    }
  }
  if (keys_.size() >= kMaxKeys) {
    return absl::ResourceExhaustedError(absl::StrCat("keyring holds ", kMaxKeys, " keys"));
  }
  if (CipherAvailable(Cipher::kAes256Gcm)) {
    crypto_aead_aes256gcm_beforenm(AesState(k), k.bytes.data());
    k.aes_ready = true;
  }
  keys_.push_back(std::move(k));
  return absl::OkStatus();
}

int Keyring::Find(std::string_view ref) const {
  ref = SV(absl::StripAsciiWhitespace(AV(ref)));
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].fingerprint == ref) return static_cast<int>(i);
  }
  absl::StatusOr<KeyBytes> key = DecodeKey(ref);
  if (!key.ok()) return -1;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].bytes == *key) return static_cast<int>(i);
  }
  return -1;
}

absl::Status Keyring::Use(std::string_view ref) {
  const int i = Find(ref);
  if (i < 0) return absl::NotFoundError("no installed key matches (give the key or its fingerprint)");
  primary_ = static_cast<size_t>(i);
  return absl::OkStatus();
}

absl::Status Keyring::Remove(std::string_view ref) {
  const int i = Find(ref);
  if (i < 0) return absl::NotFoundError("no installed key matches (give the key or its fingerprint)");
  if (static_cast<size_t>(i) == primary_) {
    return absl::FailedPreconditionError(
        absl::StrCat("key ", keys_[i].fingerprint, " is the primary; `use` another key first"));
  }
  sodium_memzero(keys_[i].bytes.data(), keys_[i].bytes.size());
  keys_.erase(keys_.begin() + i);
  if (static_cast<size_t>(i) < primary_) --primary_;
  return absl::OkStatus();
}

const Key* Keyring::FindById(uint32_t id) const {
  for (const Key& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

// ---- Seal / open ------------------------------------------------------------------------

std::span<const uint8_t> Seal(std::span<uint8_t> buffer, size_t len, const SealParams& p) {
  uint8_t* d = buffer.data();
  const size_t payload = len - kHeaderBytes;
  d[offsetof(PacketHeader, flags)] |= kFlagEncrypted;
  uint8_t* trailer = d + len;
  const uint8_t cipher = static_cast<uint8_t>(p.cipher);
  std::memcpy(trailer, &p.key->id, 4);
  trailer[4] = cipher;
  trailer[5] = trailer[6] = trailer[7] = 0;
  std::memcpy(trailer + 8, &p.sender_id, 8);
  std::memcpy(trailer + 16, &p.counter, 8);
  uint8_t ad[kAdBytes];
  std::memcpy(ad, d, kHeaderBytes);
  std::memcpy(ad + kHeaderBytes, trailer, kAdTrailerBytes);
  uint8_t nonce[24];
  MakeNonce(p.cipher, p.sender_id, p.counter, nonce);
  uint8_t* body = d + kHeaderBytes;
  uint8_t* tag = trailer + kAdTrailerBytes;
  if (const EvpCache::Entry* evp = UseEvp(p.cipher, payload, *p.key)) {
    EvpSeal(*evp, nonce, ad, body, payload, tag);
  } else if (p.cipher == Cipher::kAes256Gcm) {
    crypto_aead_aes256gcm_encrypt_detached_afternm(body, tag, nullptr, body, payload, ad, kAdBytes,
                                                   nullptr, nonce, AesState(*p.key));
  } else {
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(body, tag, nullptr, body, payload, ad,
                                                        kAdBytes, nullptr, nonce,
                                                        p.key->bytes.data());
  }
  return {d, len + kSealTrailerBytes};
}

bool Open(std::span<const uint8_t> sealed, const Keyring& ring, std::span<uint8_t> out,
          Opened* opened, OpenError* error) {
  PacketHeader h;
  if (sealed.size() < kHeaderBytes + kSealTrailerBytes) {
    *error = OpenError::kTruncated;
    return false;
  }
  std::memcpy(&h, sealed.data(), kHeaderBytes);
  const size_t payload = sealed.size() - kHeaderBytes - kSealTrailerBytes;
  if (h.payload_bytes != payload) {
    *error = OpenError::kTruncated;
    return false;
  }
  const uint8_t* trailer = sealed.data() + kHeaderBytes + payload;
  uint32_t key_id;
  std::memcpy(&key_id, trailer, 4);
  const Key* key = ring.FindById(key_id);
  if (key == nullptr) {
    *error = OpenError::kBadKey;
    return false;
  }
  const Cipher cipher = static_cast<Cipher>(trailer[4]);
  if ((cipher != Cipher::kAes256Gcm && cipher != Cipher::kXChaCha20Poly1305) ||
      (cipher == Cipher::kAes256Gcm && !key->aes_ready)) {
    *error = OpenError::kCipherUnavailable;
    return false;
  }
  uint64_t sender_id, counter;
  std::memcpy(&sender_id, trailer + 8, 8);
  std::memcpy(&counter, trailer + 16, 8);
  uint8_t ad[kAdBytes];
  std::memcpy(ad, sealed.data(), kHeaderBytes);
  std::memcpy(ad + kHeaderBytes, trailer, kAdTrailerBytes);
  uint8_t nonce[24];
  MakeNonce(cipher, sender_id, counter, nonce);
  const uint8_t* body = sealed.data() + kHeaderBytes;
  const uint8_t* tag = trailer + kAdTrailerBytes;
  uint8_t* dst = out.data() + kHeaderBytes;
  const EvpCache::Entry* evp = UseEvp(cipher, payload, *key);
  const int rc =
      evp != nullptr ? (EvpOpen(*evp, nonce, ad, body, payload, tag, dst) ? 0 : -1)
      : cipher == Cipher::kAes256Gcm
          ? crypto_aead_aes256gcm_decrypt_detached_afternm(dst, nullptr, body, payload, tag, ad,
                                                           kAdBytes, nonce, AesState(*key))
          : crypto_aead_xchacha20poly1305_ietf_decrypt_detached(dst, nullptr, body, payload, tag,
                                                                ad, kAdBytes, nonce,
                                                                key->bytes.data());
  if (rc != 0) {
    *error = OpenError::kAuthFailed;
    return false;
  }
  h.flags &= static_cast<uint8_t>(~kFlagEncrypted);
  std::memcpy(out.data(), &h, kHeaderBytes);
  opened->datagram = out.first(kHeaderBytes + payload);
  opened->sender_id = sender_id;
  opened->counter = counter;
  opened->key_id = key_id;
  return true;
}

}  // namespace scuttle::wire
