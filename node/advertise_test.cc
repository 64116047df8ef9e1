#include "node/advertise.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace scuttle {
namespace {

Endpoint E(const std::string& s) { return *Endpoint::Parse(s); }

std::vector<Endpoint> Host() {
  return {E("127.0.0.1:0"), E("169.254.3.4:0"), E("10.1.2.3:0"), E("192.168.0.9:0"),
          E("[::1]:0"),     E("[fe80::1]:0"),   E("[fd00::2]:0"), E("[2001:db8::7]:0")};
}

TEST(ChooseAdvertise, SpecificListenAddressIsAdvertised) {
  EXPECT_EQ(ChooseAdvertise(E("10.9.9.9:7400"), Host()), E("10.9.9.9:7400"));
  EXPECT_EQ(ChooseAdvertise(E("[2001:db8::9]:7400"), Host()), E("[2001:db8::9]:7400"));
  EXPECT_EQ(ChooseAdvertise(E("[::1]:7400"), Host()), E("[::1]:7400"));
}

TEST(ChooseAdvertise, Ipv4WildcardTakesFirstUsableIpv4) {
  EXPECT_EQ(ChooseAdvertise(E("0.0.0.0:7400"), Host()), E("10.1.2.3:7400"));
}

TEST(ChooseAdvertise, Ipv6WildcardPrefersIpv6SkippingLinkLocal) {
  EXPECT_EQ(ChooseAdvertise(E("[::]:7400"), Host()), E("[fd00::2]:7400"));
}

TEST(ChooseAdvertise, Ipv6WildcardFallsBackToIpv4ThenLoopback) {
  EXPECT_EQ(ChooseAdvertise(E("[::]:7400"), {E("127.0.0.1:0"), E("10.1.2.3:0"),
                                             E("[fe80::1]:0")}),
            E("10.1.2.3:7400"));
  EXPECT_EQ(ChooseAdvertise(E("[::]:7400"), {E("127.0.0.1:0"), E("[::1]:0")}),
            E("[::1]:7400"));
  EXPECT_EQ(ChooseAdvertise(E("0.0.0.0:7400"), {E("127.0.0.1:0"), E("[fd00::2]:0")}),
            E("127.0.0.1:7400"));
}

TEST(ChooseAdvertise, InterfaceAddressesIncludeLoopback) {
  bool lo = false;
  for (const Endpoint& e : InterfaceAddresses()) lo = lo || e == E("127.0.0.1:0");
  EXPECT_TRUE(lo);
}

}  // namespace
}  // namespace scuttle
