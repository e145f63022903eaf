// Runs the real `kvplan` binary as a user would and checks what it prints.
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/cli_runner.h"

namespace {

using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;

class KvplanAllocateTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& contents) {
    return scratch_.Write(name, contents);
  }

  kvplan::testing::ScratchDir scratch_{"kvplan_allocate_test"};
};

constexpr char kReference[] = "doc-llama-h64.blockgtq-reference.json";

TEST_F(KvplanAllocateTest, ReproducesTheReferenceAllocationsExactly) {
  const std::string path = std::string(KVPLAN_SHARED_DIR) + "/reference/" + kReference;
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << "../shared/reference/" << kReference << " not present";
  const nlohmann::json reference = nlohmann::json::parse(in);
  for (const char* bits : {"2", "3", "4"}) {
    RunResult r = RunKvplan("allocate --energy-json " + path + " --bits " + bits + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const nlohmann::json got = nlohmann::json::parse(r.out);
    EXPECT_EQ(got, reference["bits"][bits]["allocations"]["bgt"]) << "at " << bits << " b/dim";
  }
}

TEST_F(KvplanAllocateTest, ScoresEnergiesWithTheRequestedScore) {
  // Block 1 has the larger sum but the smaller product.
  const std::string path = Write("e.json", R"({"0.0": {"q": [1.0, 100.0], "k": [50.0, 0.01]}})");
  RunResult sum = RunKvplan("allocate --energy-json " + path + " --bits 1.5 --json");
  ASSERT_EQ(sum.exit_code, 0) << sum.out;
  EXPECT_EQ(nlohmann::json::parse(sum.out)["0.0"], nlohmann::json({1, 2}));
  RunResult product =
      RunKvplan("allocate --energy-json " + path + " --bits 1.5 --score product --json");
  ASSERT_EQ(product.exit_code, 0) << product.out;
  EXPECT_EQ(nlohmann::json::parse(product.out)["0.0"], nlohmann::json({2, 1}));
}

TEST_F(KvplanAllocateTest, MalformedInputFailsNamingTheProblem) {
  struct Case {
    std::string contents;
    std::string extra_args;
    std::string expected;  // A fragment the message must contain.
  };
  const std::vector<Case> cases = {
      {"{\"0.0\": [1, 2,", "", "neither valid JSON"},
      {"{\"0.0\": []}", "", "empty list"},
      {"{\"0.0\": [1, -2]}", "", "'0.0'[1] is -2"},
      {"{\"0.0\": [1, NaN]}", "", "neither valid JSON"},
      {"{\"0.0\": [1, \"x\"]}", "", "not a number"},
      {"{\"0.0\": {\"q\": [1], \"k\": [1, 2]}}", "", "1 q energies but 2 k energies"},
      {"{\"0.0\": [1, 2], \"0.1\": [1]}", "", "has 1 blocks"},
      {"{\"0.0\": [1, 2], \"1.1\": [1, 2]}", "", "'0.1' is missing"},
      {"{\"zero\": [1, 2]}", "", "'<layer>.<kv_head>'"},
      {"[]", "", "object"},
      {"{\"0.0\": [1, 2]}", "--score product", "ready scores"},
      {"{\"0.0\": [1, 2]}", "--score bogus", "unknown score 'bogus'"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string path = Write("bad" + std::to_string(i++) + ".json", c.contents);
    RunResult r = RunKvplan("allocate --energy-json " + path + " --bits 3 " + c.extra_args);
    EXPECT_NE(r.exit_code, 0) << c.contents;
    EXPECT_NE(r.out.find(c.expected), std::string::npos)
        << "input " << c.contents << " printed: " << r.out;
  }
}

TEST_F(KvplanAllocateTest, BudgetsOutsideTheBitRangeAreRefused) {
  const std::string path = Write("ok.json", R"({"0.0": [1.0, 2.0]})");
  for (const std::string& args :
       {std::string("--bits 0.5"), std::string("--bits 9"), std::string("--bits nan"),
        std::string("--bits 3 --min-bits 4"), std::string("--bits 3 --max-bits 9"),
        std::string("--bits 2 --min-bits 3 --max-bits 2")}) {
    RunResult r = RunKvplan("allocate --energy-json " + path + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.out;
    EXPECT_NE(r.out.find("kvplan allocate:"), std::string::npos) << r.out;
  }
  RunResult r = RunKvplan("allocate --energy-json " + path + " --bits 9");
  EXPECT_NE(r.out.find("outside [min_bits=1, max_bits=8]"), std::string::npos) << r.out;
}

TEST_F(KvplanAllocateTest, MissingFilesAndFlagsAreNamed) {
  RunResult r = RunKvplan("allocate --energy-json /nonexistent/e.json --bits 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("/nonexistent/e.json"), std::string::npos) << r.out;
  r = RunKvplan("allocate --bits 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--energy-json is required"), std::string::npos) << r.out;
  r = RunKvplan("allocate --energy-json x --bit 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown flag --bit"), std::string::npos) << r.out;
}

}  // namespace
