// ElementType itself (bytes and names), and the rule every typed op follows:
// a value outside the enum is INVALID_ARGUMENT from the shared checks, and a
// valid type that a backend does not compute is UNIMPLEMENTED from that backend.
#include "kernels/element_type.h"

#include <vector>

#include "gtest/gtest.h"
#include "kernels/attention.h"
#include "kernels/cast.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera {
namespace {

using kernel_test::IsInvalidArgumentMentioning;

constexpr ElementType kBadType = static_cast<ElementType>(7);

TEST(ElementTypeTest, BytesAndNames) {
  static_assert(ElementBytes(ElementType::kF32) == 4);
  static_assert(ElementBytes(ElementType::kBF16) == 2);
  EXPECT_EQ(ElementBytes(kBadType), 0);
  EXPECT_STREQ(ElementTypeName(ElementType::kF32), "f32");
  EXPECT_STREQ(ElementTypeName(ElementType::kBF16), "bf16");
}

TEST(ElementTypeTest, SharedChecksRejectAValueOutsideTheEnum) {
  std::vector<float> buf(256);
  LinearParams linear;
  linear.rows = 2;
  linear.in_features = linear.out_features = 4;
  linear.x = linear.weight = buf.data();
  linear.y = buf.data() + 128;
  linear.type = kBadType;
  EXPECT_TRUE(IsInvalidArgumentMentioning(CheckLinearParams(linear), "Linear: type"));

  AttentionParams attention;
  attention.q_len = attention.kv_len = 1;
  attention.num_q_heads = attention.num_kv_heads = 1;
  attention.head_dim = 4;
  attention.scale = 0.5f;
  attention.q = attention.k = attention.v = buf.data();
  attention.out = buf.data() + 128;
  attention.type = kBadType;
  EXPECT_TRUE(IsInvalidArgumentMentioning(CheckAttentionParams(attention), "Attention: type"));

  const std::vector<int32_t> ids = {0};
  EmbeddingParams embedding;
  embedding.num_tokens = 1;
  embedding.vocab_size = 1;
  embedding.hidden = 4;
  embedding.ids = ids.data();
  embedding.table = buf.data();
  embedding.out = buf.data() + 128;
  embedding.table_type = kBadType;
  EXPECT_TRUE(IsInvalidArgumentMentioning(CheckEmbeddingParams(embedding), "Embedding: table_type"));

  CastParams cast{1, 4, kBadType, buf.data(), 0, ElementType::kF32, buf.data() + 128, 0};
  EXPECT_TRUE(IsInvalidArgumentMentioning(CheckCastParams(cast), "Cast: in_type"));
}

TEST(ElementTypeTest, CpuRefusesBf16OperandsOfLinearAndAttention) {
  std::vector<uint16_t> operands(256);
  std::vector<float> out(256);
  LinearParams linear;
  linear.rows = 2;
  linear.in_features = linear.out_features = 4;
  linear.type = ElementType::kBF16;
  linear.x = linear.weight = operands.data();
  linear.y = out.data();
  ASSERT_TRUE(CheckLinearParams(linear).ok());  // a valid request ...
  EXPECT_EQ(cpu::Linear(linear).code(), absl::StatusCode::kUnimplemented);  // ... not computed here

  AttentionParams attention;
  attention.q_len = attention.kv_len = 1;
  attention.num_q_heads = attention.num_kv_heads = 1;
  attention.head_dim = 4;
  attention.scale = 0.5f;
  attention.type = ElementType::kBF16;
  attention.q = attention.k = attention.v = operands.data();
  attention.out = out.data();
  ASSERT_TRUE(CheckAttentionParams(attention).ok());
  EXPECT_EQ(cpu::Attention(attention).code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tessera
