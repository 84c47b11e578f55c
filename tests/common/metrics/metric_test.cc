#include "common/metrics/metric.h"

#include <gtest/gtest.h>

namespace barrage::metrics {
namespace {

TEST(MetricTest, TypeNamesAreK6s) {
  EXPECT_EQ(MetricTypeName(MetricType::kCounter), "counter");
  EXPECT_EQ(MetricTypeName(MetricType::kGauge), "gauge");
  EXPECT_EQ(MetricTypeName(MetricType::kRate), "rate");
  EXPECT_EQ(MetricTypeName(MetricType::kTrend), "trend");
  EXPECT_EQ(ValueTypeName(ValueType::kDefault), "default");
  EXPECT_EQ(ValueTypeName(ValueType::kTime), "time");
  EXPECT_EQ(ValueTypeName(ValueType::kData), "data");
}

TEST(TagSetTest, EncodesSortedAndEscaped) {
  EXPECT_EQ(EncodeTagSet({}), "");
  EXPECT_EQ(EncodeTagSet({{"status", "0"}, {"method", "SayHello"}}), "method=SayHello,status=0");
  EXPECT_EQ(EncodeTagSet({{"a=b", "c,d\\e"}}), "a\\=b=c\\,d\\\\e");
}

TEST(TagSetTest, RoundTripsExactly) {
  const std::vector<TagSet> sets = {
      {},
      {{"", ""}},
      {{"k", ""}},
      {{"", "v"}},
      {{"url", "127.0.0.1:50051/hello.HelloService/SayHello"}, {"group", "::a::b"}},
      {{"weird,key=", "va\\lue,=,\\"}, {"x", "\\"}, {"y", "="}},
      {{"µ", "ünï cødé"}},
  };
  for (const TagSet& tags : sets) {
    const std::string encoded = EncodeTagSet(tags);
    EXPECT_EQ(DecodeTagSet(encoded), tags) << encoded;
  }
}

TEST(TagSetTest, DistinctSetsEncodeDistinctly) {
  // Without escaping these two would collide as "a=b,c=d".
  const TagSet one = {{"a", "b,c=d"}};
  const TagSet two = {{"a", "b"}, {"c", "d"}};
  EXPECT_NE(EncodeTagSet(one), EncodeTagSet(two));
  EXPECT_NE(EncodeTagSet({}), EncodeTagSet({{"", ""}}));
}

}  // namespace
}  // namespace barrage::metrics
