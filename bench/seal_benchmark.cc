// seal+open cost (wire/seal.h) against libsodium's own AEAD calls on the same bytes, same
// run (DESIGN §12: figures are ratios to a same-run baseline). Per size and cipher:
//   BM_SealOpen      wire::Seal then wire::Open of a 16-byte header + payload datagram
//   BM_SodiumRaw     the bare libsodium encrypt_detached + decrypt_detached of the payload
//                    (AES-256-GCM with its precomputed state, as wire/seal.cc uses it)
// bytes_per_second gives ns/KB = 1e12 / (1024 * bytes_per_second) ... read the ratio
// SealOpen / SodiumRaw: what scuttle's framing (AD assembly, nonce, key lookup) adds.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <vector>

#include "wire/packet.h"
#include "wire/seal.h"

namespace {

using namespace scuttle::wire;

Keyring TheRing() {
  Keyring r;
  KeyBytes k;
  k.fill(7);
  (void)r.Install(k);
  return r;
}

std::vector<uint64_t> Datagram(size_t payload) {
  std::vector<uint64_t> buf((kHeaderBytes + payload + kSealTrailerBytes + 7) / 8 + 1);
  PacketHeader h{};
  h.magic = kMagic;
  h.version = kProtocolVersion;
  h.payload_bytes = static_cast<uint32_t>(payload);
  std::memcpy(buf.data(), &h, sizeof(h));
  return buf;
}

void BM_SealOpen(benchmark::State& state) {
  const Cipher c = static_cast<Cipher>(state.range(1));
  if (!CipherAvailable(c)) return state.SkipWithError("cipher unavailable on this CPU");
  const size_t payload = static_cast<size_t>(state.range(0));
  const Keyring ring = TheRing();
  std::vector<uint64_t> buf = Datagram(payload);
  std::vector<uint64_t> out(buf.size());
  std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buf.data()), buf.size() * 8);
  std::span<uint8_t> dst(reinterpret_cast<uint8_t*>(out.data()), out.size() * 8);
  uint64_t counter = 1;
  for (auto _ : state) {
    bytes[offsetof(PacketHeader, flags)] = 0;
    auto sealed = Seal(bytes, kHeaderBytes + payload, SealParams{&ring.primary(), c, 42, counter++});
    Opened o;
    OpenError err;
    if (!Open(sealed, ring, dst, &o, &err)) state.SkipWithError("did not open");
    benchmark::DoNotOptimize(o.datagram.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (kHeaderBytes + payload)));
}

void BM_SodiumRaw(benchmark::State& state) {
  const Cipher c = static_cast<Cipher>(state.range(1));
  if (!CipherAvailable(c)) return state.SkipWithError("cipher unavailable on this CPU");
  const size_t payload = static_cast<size_t>(state.range(0));
  const Keyring ring = TheRing();
  const Key& k = ring.primary();
  std::vector<uint8_t> buf(payload + 16), out(payload + 16);
  uint8_t ad[40] = {}, nonce[24] = {}, tag[16];
  uint64_t counter = 1;
  auto* st = reinterpret_cast<crypto_aead_aes256gcm_state*>(const_cast<uint8_t*>(k.aes_state.data()));
  for (auto _ : state) {
    std::memcpy(nonce + 4, &counter, 8);
    ++counter;
    if (c == Cipher::kAes256Gcm) {
      crypto_aead_aes256gcm_encrypt_detached_afternm(buf.data(), tag, nullptr, buf.data(), payload,
                                                     ad, sizeof(ad), nullptr, nonce, st);
      if (crypto_aead_aes256gcm_decrypt_detached_afternm(out.data(), nullptr, buf.data(), payload,
                                                         tag, ad, sizeof(ad), nonce, st) != 0) {
        state.SkipWithError("did not open");
      }
    } else {
      crypto_aead_xchacha20poly1305_ietf_encrypt_detached(buf.data(), tag, nullptr, buf.data(),
                                                          payload, ad, sizeof(ad), nullptr, nonce,
                                                          k.bytes.data());
      if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out.data(), nullptr, buf.data(),
                                                              payload, tag, ad, sizeof(ad), nonce,
                                                              k.bytes.data()) != 0) {
        state.SkipWithError("did not open");
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (kHeaderBytes + payload)));
}

// The bare OpenSSL EVP AES-256-GCM seal + open of the payload, key schedule done once (as
// wire/seal.cc uses it at and above kEvpMinPayload): with BM_SodiumRaw, what picks the
// threshold.
void BM_OpenSslRaw(benchmark::State& state) {
  const size_t payload = static_cast<size_t>(state.range(0));
  KeyBytes key;
  key.fill(7);
  EVP_CIPHER_CTX* enc = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* dec = EVP_CIPHER_CTX_new();
  if (EVP_EncryptInit_ex(enc, EVP_aes_256_gcm(), nullptr, key.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(dec, EVP_aes_256_gcm(), nullptr, key.data(), nullptr) != 1) {
    state.SkipWithError("OpenSSL refused AES-256-GCM");
  }
  std::vector<uint8_t> buf(payload + 16), out(payload + 16);
  uint8_t ad[40] = {}, nonce[12] = {}, tag[16];
  uint64_t counter = 1;
  int n = 0;
  for (auto _ : state) {
    std::memcpy(nonce + 4, &counter, 8);
    ++counter;
    EVP_EncryptInit_ex(enc, nullptr, nullptr, nullptr, nonce);
    EVP_EncryptUpdate(enc, nullptr, &n, ad, sizeof(ad));
    EVP_EncryptUpdate(enc, buf.data(), &n, buf.data(), static_cast<int>(payload));
    EVP_EncryptFinal_ex(enc, buf.data() + n, &n);
    EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_GCM_GET_TAG, 16, tag);
    EVP_DecryptInit_ex(dec, nullptr, nullptr, nullptr, nonce);
    EVP_DecryptUpdate(dec, nullptr, &n, ad, sizeof(ad));
    EVP_DecryptUpdate(dec, out.data(), &n, buf.data(), static_cast<int>(payload));
    EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_GCM_SET_TAG, 16, tag);
    if (EVP_DecryptFinal_ex(dec, out.data() + n, &n) != 1) state.SkipWithError("did not open");
    benchmark::DoNotOptimize(out.data());
  }
  EVP_CIPHER_CTX_free(enc);
  EVP_CIPHER_CTX_free(dec);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (kHeaderBytes + payload)));
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int c : {static_cast<int>(Cipher::kAes256Gcm), static_cast<int>(Cipher::kXChaCha20Poly1305)}) {
    for (int64_t p : {48, 256, 496, 1024, 1384, 8192, 65491}) b->Args({p, c});  // datagrams of 64, 1400, 65507 B
  }
  b->ArgNames({"payload", "cipher"});
}

BENCHMARK(BM_SealOpen)->Apply(Sizes);
BENCHMARK(BM_SodiumRaw)->Apply(Sizes);
BENCHMARK(BM_OpenSslRaw)
    ->ArgName("payload")
    ->Arg(48)->Arg(256)->Arg(496)->Arg(1024)->Arg(1384)->Arg(8192)->Arg(65491);

}  // namespace

BENCHMARK_MAIN();
