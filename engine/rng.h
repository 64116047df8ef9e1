// A small, fast, seedable PRNG (xoshiro256**) owned by whoever drives an engine, so a
// seed reproduces a run bit for bit (DESIGN §7, §11). Never seeded from the environment.
#ifndef SCUTTLE_ENGINE_RNG_H_
#define SCUTTLE_ENGINE_RNG_H_

#include <cstdint>

namespace scuttle {

class Rng {
 public:
  using result_type = uint64_t;
  explicit Rng(uint64_t seed) {
    // splitmix64 expands the seed into the 256-bit state.
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return UINT64_MAX; }
  uint64_t operator()() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>((__uint128_t{(*this)()} * n) >> 64); }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  bool Chance(double p) { return Unit() < p; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_RNG_H_
