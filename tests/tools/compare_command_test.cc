// `tessera make-random-model` then `tessera compare` through the real binary:
// the tiny random model on the CPU backend, one worker process against two,
// must agree to rounding (fp32 on both sides) with identical greedy tokens;
// and compare must refuse, before starting anything, a request whose logits
// could not fit in one gRPC message.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tessera {
namespace {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunTessera(const std::string& args) {
  const std::string log = testing::TempDir() + "/compare_command_test_" + std::to_string(::getpid()) + ".log";
  const int status = std::system(absl::StrCat(TESSERA_BINARY, " ", args, " >", log, " 2>&1").c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  r.output = s.str();
  std::filesystem::remove(log);
  return r;
}

// The number after "key=" in `text`, or -1.
double ValueAfter(const std::string& text, const std::string& key) {
  const size_t at = text.find(key + "=");
  if (at == std::string::npos) return -1;
  const size_t begin = at + key.size() + 1;
  const size_t end = text.find_first_of(" \n", begin);
  double value = -1;
  if (!absl::SimpleAtod(text.substr(begin, end - begin), &value)) return -1;
  return value;
}

class CompareCommandTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new std::string(testing::TempDir() + "/compare_command_test_model_" + std::to_string(::getpid()));
    const CommandResult made =
        RunTessera(absl::StrCat("make-random-model --preset tiny --vocab 512 --seed 1 --out ", *model_dir_));
    ASSERT_EQ(made.exit_code, 0) << made.output;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*model_dir_);
    delete model_dir_;
  }
  static std::string* model_dir_;
};

std::string* CompareCommandTest::model_dir_ = nullptr;

TEST_F(CompareCommandTest, OneWorkerAndTwoWorkersAgreeOnCpu) {
  const CommandResult r = RunTessera(absl::StrCat("compare --model ", *model_dir_,
                                                  " --backend cpu --baseline-workers 1 --candidate-workers 2"
                                                  " --prompt-length 300 --steps 4 --seed 3 --tolerance 1e-4"
                                                  " --ready-timeout-s 120"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const double rel_l2 = ValueAfter(r.output, "prompt_rel_l2");
  EXPECT_GE(rel_l2, 0) << r.output;
  EXPECT_LT(rel_l2, 1e-4) << r.output;
  EXPECT_NE(r.output.find("greedy=4/4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("run baseline: workers=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("run candidate: workers=2"), std::string::npos) << r.output;
}

TEST_F(CompareCommandTest, RefusesLogitsLargerThanOneGrpcMessage) {
  // 600000 x 512 x 4 B = 1.2 GB > 1 GiB.
  const CommandResult r = RunTessera(absl::StrCat("compare --model ", *model_dir_, " --prompt-length 600000"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("must fit in one gRPC message"), std::string::npos) << r.output;
}

TEST_F(CompareCommandTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunTessera("compare --prompt-length 10").exit_code, 2);
  EXPECT_EQ(RunTessera(absl::StrCat("compare --model ", *model_dir_, " --candidate-workers 0")).exit_code, 2);
  EXPECT_EQ(RunTessera("make-random-model --preset tiny").exit_code, 2);
}

}  // namespace
}  // namespace tessera
