#include "wire/seal.h"

#include <cstring>
#include <string>
#include <vector>

#include <sodium.h>

#include "gtest/gtest.h"
#include "wire/packet.h"

namespace scuttle::wire {
namespace {

// A finished plaintext datagram (header + a small payload) with room for the trailer.
std::vector<uint8_t> Datagram(size_t payload) {
  std::vector<uint8_t> d(kHeaderBytes + payload + kSealTrailerBytes);
  PacketHeader h{};
  h.magic = kMagic;
  h.version = kProtocolVersion;
  h.payload_bytes = static_cast<uint32_t>(payload);
  h.cluster_hash = ClusterHash("test");
  std::memcpy(d.data(), &h, kHeaderBytes);
  for (size_t i = 0; i < payload; ++i) d[kHeaderBytes + i] = static_cast<uint8_t>(i * 7 + 1);
  return d;
}

Keyring Ring(std::initializer_list<KeyBytes> keys) {
  Keyring r;
  for (const KeyBytes& k : keys) EXPECT_TRUE(r.Install(k).ok());
  return r;
}

KeyBytes K(uint8_t fill) {
  KeyBytes k;
  k.fill(fill);
  return k;
}

std::vector<uint8_t> SealCopy(std::vector<uint8_t> d, const Keyring& ring, Cipher c,
                              uint64_t counter = 5) {
  const size_t len = d.size() - kSealTrailerBytes;
  auto s = Seal(d, len, SealParams{&ring.primary(), c, 0x1122334455667788ull, counter});
  EXPECT_EQ(s.size(), d.size());
  return d;
}

class SealTest : public ::testing::TestWithParam<Cipher> {
 protected:
  void SetUp() override {
    if (!CipherAvailable(GetParam())) GTEST_SKIP() << CipherName(GetParam()) << " unavailable";
  }
};

TEST_P(SealTest, RoundTripHidesPayloadAndRestoresHeader) {
  const Keyring ring = Ring({K(1)});
  const std::vector<uint8_t> plain = Datagram(300);
  std::vector<uint8_t> sealed = SealCopy(plain, ring, GetParam());
  EXPECT_NE(sealed[offsetof(PacketHeader, flags)] & kFlagEncrypted, 0);
  EXPECT_NE(0, std::memcmp(sealed.data() + kHeaderBytes, plain.data() + kHeaderBytes, 300));
  alignas(8) uint8_t out[1024];
  Opened o;
  OpenError err;
  ASSERT_TRUE(Open(sealed, ring, out, &o, &err));
  ASSERT_EQ(o.datagram.size(), kHeaderBytes + 300);
  EXPECT_EQ(0, std::memcmp(o.datagram.data(), plain.data(), kHeaderBytes + 300));
  EXPECT_EQ(o.sender_id, 0x1122334455667788ull);
  EXPECT_EQ(o.counter, 5u);
  EXPECT_EQ(o.key_id, ring.primary().id);
}

TEST_P(SealTest, EveryFlippedBitFailsWithAReason) {
  const Keyring ring = Ring({K(1)});
  const std::vector<uint8_t> sealed = SealCopy(Datagram(40), ring, GetParam());
  alignas(8) uint8_t out[1024];
  for (size_t byte = 0; byte < sealed.size(); ++byte) {
    std::vector<uint8_t> bad = sealed;
    bad[byte] ^= 0x10;
    Opened o;
    OpenError err;
    ASSERT_FALSE(Open(bad, ring, out, &o, &err)) << "byte " << byte;
    const size_t trailer = sealed.size() - kSealTrailerBytes;
    if (byte >= offsetof(PacketHeader, payload_bytes) && byte < offsetof(PacketHeader, payload_bytes) + 4) {
      EXPECT_EQ(err, OpenError::kTruncated) << byte;
    } else if (byte >= trailer && byte < trailer + 4) {
      EXPECT_EQ(err, OpenError::kBadKey) << byte;
    } else if (byte == trailer + 4) {
      EXPECT_EQ(err, OpenError::kCipherUnavailable) << byte;
    } else {
      EXPECT_EQ(err, OpenError::kAuthFailed) << byte;
    }
  }
}

TEST_P(SealTest, WrongKeyTruncatedAndGarbage) {
  const Keyring ring = Ring({K(1)});
  const std::vector<uint8_t> sealed = SealCopy(Datagram(64), ring, GetParam());
  alignas(8) uint8_t out[1024];
  Opened o;
  OpenError err;
  EXPECT_FALSE(Open(sealed, Ring({K(2)}), out, &o, &err));
  EXPECT_EQ(err, OpenError::kBadKey);
  for (size_t n : {size_t{0}, size_t{10}, kHeaderBytes + kSealTrailerBytes - 1, sealed.size() - 1}) {
    EXPECT_FALSE(Open(std::span(sealed).first(n), ring, out, &o, &err)) << n;
    EXPECT_EQ(err, OpenError::kTruncated) << n;
  }
  std::vector<uint8_t> garbage(200, 0xab);
  EXPECT_FALSE(Open(garbage, ring, out, &o, &err));
  // A different key that happens to carry the installed key's id fails the tag.
  Keyring forged = Ring({K(3)});
  std::vector<uint8_t> f = SealCopy(Datagram(64), forged, GetParam());
  std::memcpy(f.data() + f.size() - kSealTrailerBytes, &ring.primary().id, 4);
  EXPECT_FALSE(Open(f, ring, out, &o, &err));
  EXPECT_EQ(err, OpenError::kAuthFailed);
}

TEST_P(SealTest, OpensWithAnyInstalledKey) {
  Keyring old_ring = Ring({K(1)});
  Keyring both = Ring({K(2), K(1)});
  alignas(8) uint8_t out[1024];
  Opened o;
  OpenError err;
  EXPECT_TRUE(Open(SealCopy(Datagram(10), old_ring, GetParam()), both, out, &o, &err));
  EXPECT_TRUE(Open(SealCopy(Datagram(10), both, GetParam()), both, out, &o, &err));
  EXPECT_FALSE(Open(SealCopy(Datagram(10), both, GetParam()), old_ring, out, &o, &err));
  EXPECT_EQ(err, OpenError::kBadKey);
}

// Payloads on both sides of kEvpMinPayload (libsodium below, OpenSSL at and above for
// AES-256-GCM) up to a full 65,507-byte datagram: round trip, and a flipped byte in the body,
// the associated trailer or the tag fails.
TEST_P(SealTest, EverySizeRoundTripsAndRejectsTampering) {
  const Keyring ring = Ring({K(1)});
  std::vector<uint8_t> out(70000);
  for (size_t payload : {kEvpMinPayload - 1, kEvpMinPayload, size_t{1384}, size_t{65491}}) {
    const std::vector<uint8_t> plain = Datagram(payload);
    const std::vector<uint8_t> sealed = SealCopy(plain, ring, GetParam(), 9 + payload);
    Opened o;
    OpenError err;
    ASSERT_TRUE(Open(sealed, ring, out, &o, &err)) << payload;
    ASSERT_EQ(o.datagram.size(), kHeaderBytes + payload);
    EXPECT_EQ(0, std::memcmp(o.datagram.data(), plain.data(), kHeaderBytes + payload)) << payload;
    const size_t trailer = sealed.size() - kSealTrailerBytes;
    for (size_t byte : {kHeaderBytes, kHeaderBytes + payload / 2, trailer + 8, trailer + 16,
                        sealed.size() - 1}) {
      std::vector<uint8_t> bad = sealed;
      bad[byte] ^= 0x01;
      EXPECT_FALSE(Open(bad, ring, out, &o, &err)) << payload << " byte " << byte;
      EXPECT_EQ(err, OpenError::kAuthFailed) << payload << " byte " << byte;
    }
  }
}

// The OpenSSL path produces exactly libsodium's AES-256-GCM (the wire does not say which
// implementation sealed a datagram): decrypt a large sealed payload with libsodium directly.
TEST(SealInteropTest, OpenSslSealOpensWithLibsodium) {
  if (!CipherAvailable(Cipher::kAes256Gcm)) GTEST_SKIP() << "AES-256-GCM unavailable";
  const Keyring ring = Ring({K(4)});
  const size_t payload = 4000;
  ASSERT_GE(payload, kEvpMinPayload);
  const std::vector<uint8_t> plain = Datagram(payload);
  const uint64_t counter = 77;
  const std::vector<uint8_t> sealed = SealCopy(plain, ring, Cipher::kAes256Gcm, counter);
  const uint8_t* trailer = sealed.data() + kHeaderBytes + payload;
  uint8_t ad[kHeaderBytes + 24];
  std::memcpy(ad, sealed.data(), kHeaderBytes);
  std::memcpy(ad + kHeaderBytes, trailer, 24);
  // The AES-256-GCM nonce (seal.h): the low 32 bits of the sender id, then the counter.
  uint64_t sender;
  std::memcpy(&sender, trailer + 8, 8);
  const uint32_t low = static_cast<uint32_t>(sender);
  uint8_t nonce[12];
  std::memcpy(nonce, &low, 4);
  std::memcpy(nonce + 4, &counter, 8);
  std::vector<uint8_t> dst(payload);
  ASSERT_EQ(0, crypto_aead_aes256gcm_decrypt_detached(
                   dst.data(), nullptr, sealed.data() + kHeaderBytes, payload, trailer + 24, ad,
                   sizeof(ad), nonce, ring.primary().bytes.data()));
  EXPECT_EQ(0, std::memcmp(dst.data(), plain.data() + kHeaderBytes, payload));
}

INSTANTIATE_TEST_SUITE_P(Ciphers, SealTest,
                         ::testing::Values(Cipher::kAes256Gcm, Cipher::kXChaCha20Poly1305),
                         [](const auto& info) { return std::string(CipherName(info.param)); });

TEST(KeyringTest, ParseSerializeUseRemove) {
  const std::string a = EncodeKey(K(1)), b = EncodeKey(K(2));
  absl::StatusOr<Keyring> r = Keyring::Parse("# comment\n\n" + a + "\n  " + b + "  \n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 2u);
  EXPECT_EQ(r->primary().bytes, K(1));
  EXPECT_EQ(r->primary().fingerprint.size(), 16u);
  EXPECT_TRUE(absl::IsAlreadyExists(r->Install(K(1))));
  EXPECT_TRUE(absl::IsFailedPrecondition(r->Remove(a)));
  ASSERT_TRUE(r->Use(r->keys()[1].fingerprint).ok());
  EXPECT_EQ(r->primary().bytes, K(2));
  ASSERT_TRUE(r->Remove(a).ok());
  EXPECT_EQ(r->size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(r->Use(a)));
  absl::StatusOr<Keyring> again = Keyring::Parse(r->Serialize());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->primary().bytes, K(2));
  EXPECT_FALSE(Keyring::Parse("not-base64\n").ok());
  EXPECT_FALSE(Keyring::Parse(EncodeKey(K(1)).substr(0, 20) + "\n").ok());
  EXPECT_TRUE(Keyring::Parse("").ok());
  EXPECT_TRUE(Keyring::Parse("")->empty());
  Keyring full;
  for (size_t i = 0; i < kMaxKeys; ++i) ASSERT_TRUE(full.Install(K(static_cast<uint8_t>(10 + i))).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(full.Install(K(99))));
}

TEST(KeyringTest, GenerateDecodes) {
  const KeyBytes k = GenerateKey();
  absl::StatusOr<KeyBytes> d = DecodeKey(EncodeKey(k));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, k);
  EXPECT_NE(GenerateKey(), k);
}

}  // namespace
}  // namespace scuttle::wire
