#include "tests/target/route_guide_service.h"

#include <gtest/gtest.h>

namespace barrage::target {
namespace {

::main::Point P(int32_t latitude, int32_t longitude) {
  ::main::Point p;
  p.set_latitude(latitude);
  p.set_longitude(longitude);
  return p;
}

::main::Rectangle R(::main::Point a, ::main::Point b) {
  ::main::Rectangle r;
  *r.mutable_lo() = a;
  *r.mutable_hi() = b;
  return r;
}

TEST(RouteGuideTest, RectangleCornersMayComeInEitherOrderAndEdgesAreInside) {
  const ::main::Point p = P(410248224, -747127767);
  EXPECT_TRUE(InRectangle(p, R(P(400000000, -750000000), P(420000000, -730000000))));
  EXPECT_TRUE(InRectangle(p, R(P(420000000, -730000000), P(400000000, -750000000))));
  EXPECT_TRUE(InRectangle(p, R(p, p)));
  EXPECT_FALSE(InRectangle(p, R(P(410248225, -750000000), P(420000000, -730000000))));
  EXPECT_FALSE(InRectangle(P(0, 0), R(P(400000000, -750000000), P(420000000, -730000000))));
}

TEST(RouteGuideTest, DistanceIsTheHaversineInWholeMetres) {
  // Patriots Path to 101 New Jersey 10 (gRPC's example data), by the same
  // formula in Python: 18,327 m.
  EXPECT_EQ(DistanceMetres(P(407838351, -746143763), P(408122808, -743999179)), 18327);
  EXPECT_EQ(DistanceMetres(P(1, 1), P(1, 1)), 0);
  // Antipodes: half the circumference, within int32.
  EXPECT_EQ(DistanceMetres(P(0, 0), P(0, 1800000000)), 20015086);
}

TEST(RouteGuideTest, NotesAreBoundedPerPointAndInPoints) {
  RouteGuideService service;
  ::main::RouteNote note;
  *note.mutable_location() = P(1, 2);
  for (size_t i = 0; i < RouteGuideService::kNotesPerPoint + 10; ++i) {
    note.set_message(std::to_string(i));
    std::vector<::main::RouteNote> got = service.Record(note);
    ASSERT_EQ(got.size(), std::min(i + 1, RouteGuideService::kNotesPerPoint));
    EXPECT_EQ(got.back().message(), std::to_string(i));  // the note itself last
  }
  // Enough other points push the first one out: it starts afresh.
  for (int32_t i = 0; i < static_cast<int32_t>(RouteGuideService::kPoints); ++i) {
    *note.mutable_location() = P(100 + i, 0);
    service.Record(note);
  }
  *note.mutable_location() = P(1, 2);
  EXPECT_EQ(service.Record(note).size(), 1u);
}

}  // namespace
}  // namespace barrage::target
