#include "wire/endpoint.h"

#include "gtest/gtest.h"

namespace scuttle {
namespace {

TEST(EndpointTest, ParsesAndPrintsV4) {
  auto ep = Endpoint::Parse("127.0.0.1:7400");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->family, 4);
  EXPECT_EQ(ep->port, 7400);
  EXPECT_EQ(ep->ToString(), "127.0.0.1:7400");
  EXPECT_EQ(*ep, Endpoint::V4(0x7f000001, 7400));
}

TEST(EndpointTest, ParsesAndPrintsV6) {
  auto ep = Endpoint::Parse("[::1]:9");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->family, 6);
  EXPECT_EQ(ep->ToString(), "[::1]:9");
}

TEST(EndpointTest, RejectsGarbage) {
  for (const char* bad : {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:70000", "host:80", "[::1]80",
                          "1.2.3.4:8x", "[::1", ":80"}) {
    EXPECT_FALSE(Endpoint::Parse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace scuttle
