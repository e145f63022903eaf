#include "worker/tokenizer/byte_level.h"

#include <string>

#include "gtest/gtest.h"

namespace kvplan::tokenizer_internal {
namespace {

TEST(ByteLevelAlphabetTest, KnownCharacters) {
  const ByteLevelAlphabet& a = ByteLevelAlphabet::Get();
  EXPECT_EQ(a.CharFor(' '), "\xC4\xA0");   // 'Ġ' U+0120
  EXPECT_EQ(a.CharFor('\n'), "\xC4\x8A");  // 'Ċ' U+010A
  EXPECT_EQ(a.CharFor('a'), "a");
  EXPECT_EQ(a.CharFor(0xE9), "\xC3\xA9");  // Printable Latin-1 stands for itself.
  EXPECT_EQ(a.CharFor(0xAD), "\xC5\x83");  // Soft hyphen is not printable: U+0143.
}

TEST(ByteLevelAlphabetTest, EveryByteRoundTrips) {
  const ByteLevelAlphabet& a = ByteLevelAlphabet::Get();
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(a.Decode(a.Encode(all), &back));
  EXPECT_EQ(back, all);
}

TEST(ByteLevelAlphabetTest, ForeignCharactersAreRejected) {
  std::string bytes = "kept";
  EXPECT_FALSE(ByteLevelAlphabet::Get().Decode("ab\xE2\x96\x81", &bytes));
  EXPECT_EQ(bytes, "kept");
}

}  // namespace
}  // namespace kvplan::tokenizer_internal
