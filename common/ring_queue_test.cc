#include "common/ring_queue.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace nodescope {
namespace {

// Random pushes and pops, checked element by element against std::deque.
TEST(RingQueue, BehavesLikeADequeAtTheEnds) {
  RingQueue<std::string> q;
  std::deque<std::string> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    // Grows in bursts and drains again, so the front wraps around the array at every size.
    const bool push = model.empty() || rng() % 100 < (step % 2000 < 1000 ? 60 : 40);
    if (push) {
      std::string v = std::to_string(step) + std::string(rng() % 40, 'x');
      if (step % 2 == 0) {
        q.push_back(v);
      } else {
        q.emplace_back() = v;
      }
      model.push_back(v);
    } else {
      ASSERT_EQ(q.front(), model.front());
      q.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(q.size(), model.size());
    ASSERT_EQ(q.empty(), model.empty());
    if (!model.empty()) {
      ASSERT_EQ(q.back(), model.back());
      const size_t i = rng() % model.size();
      ASSERT_EQ(q[i], model[i]) << "step " << step << " index " << i;
    }
  }
  q.clear();
  EXPECT_TRUE(q.empty());
  q.push_back("after clear");
  EXPECT_EQ(q.front(), "after clear");
  EXPECT_EQ(q.size(), 1u);
}

// A popped slot lets go of what it held, and a new element starts value-initialized.
TEST(RingQueue, PoppedSlotsAreReset) {
  RingQueue<std::string> q;
  for (int i = 0; i < 4; ++i) q.push_back(std::string(100, 'a' + i));
  for (int i = 0; i < 4; ++i) q.pop_front();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.emplace_back(), "");
}

// What a burst grew is given back once the queue empties; a small queue keeps its slots.
TEST(RingQueue, AnEmptiedBurstFreesItsSlots) {
  RingQueue<std::string> q;
  for (int i = 0; i < 1000; ++i) q.push_back(std::to_string(i));
  EXPECT_EQ(q.capacity(), 1024u);
  for (int i = 0; i < 999; ++i) q.pop_front();
  EXPECT_EQ(q.capacity(), 1024u);
  EXPECT_EQ(q.front(), "999");
  q.pop_front();
  EXPECT_EQ(q.capacity(), 0u);
  q.push_back("again");
  EXPECT_EQ(q.front(), "again");
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) q.push_back("x");
    while (!q.empty()) q.pop_front();
  }
  EXPECT_EQ(q.capacity(), 64u);
}

}  // namespace
}  // namespace nodescope
