// Sharded == unsharded, layer type by layer type, forward and backward, tp in {2, 3, 4}, fp32 and
// bf16: every tensor that names a global tensor (activations, their gradients, weight gradients
// shard by shard) is compared with the unsharded run within its derived tolerance.
#include <doctest/doctest.h>

#include "test_numerics_scenario.hpp"

using namespace tpsim;
using lowering::ProgramBuilder;
using lowering::Tape;
using lowering::Value;

namespace {

void require_pass(const NumericsReport& r, const std::vector<std::string>& must_compare) {
  INFO((r.ok ? std::string("ok") : describe(*r.first_failure())));
  CHECK(r.ok);
  CHECK(r.checks.size() >= must_compare.size());
  for (const auto& t : must_compare) {
    INFO("tensor " << t << " was not compared");
    CHECK(test::has_check(r, t));
  }
}

// Each piece at tp 2, 3 and 4 in fp32 and bf16.
template <class Body>
void each_config(test::Tiny base, Body body) {
  for (int tp : {2, 3, 4})
    for (DType dtype : {DType::fp32, DType::bf16}) {
      test::Tiny t = base;
      t.tp = tp;
      if (t.kv_heads != t.heads) t.kv_heads = tp == 3 ? 3 : 4;   // GQA: kv heads divisible by tp
      CAPTURE(tp);
      const std::string dtype_name = to_string(dtype);
      CAPTURE(dtype_name);
      body(test::tiny_scenario(t), dtype);
    }
}

}  // namespace

TEST_CASE("column-parallel linear (megatron fc1: copy forward, all-reduce backward)") {
  each_config({}, [](const Scenario& s, DType dt) {
    const int64_t h = s.model.hidden, f = s.model.ffn;
    auto r = test::check_piece(s, test::fwd_bwd([=](ProgramBuilder& b, const Value& x, Tape& t) {
      return b.linear_forward("lin", "mlp.fc1", x, h, f, t);
    }, h), dt);
    require_pass(r, {"lin.out", "lin.grad", "x.grad"});
  });
}

TEST_CASE("row-parallel linear (megatron fc2: all-reduce forward, copy backward)") {
  each_config({}, [](const Scenario& s, DType dt) {
    const int64_t h = s.model.hidden, f = s.model.ffn;
    auto r = test::check_piece(s, [=](ProgramBuilder& b) {
      Tape t;
      const Value x = b.input("x", f, lowering::Layout::feat);   // already split over features
      const Value y = b.linear_forward("lin", "mlp.fc2", x, f, h, t);
      b.backward(t, y, b.gradient_seed(y));
      b.gradient(x);
    }, dt);
    require_pass(r, {"lin.out", "lin.grad", "x.grad"});
  });
}

TEST_CASE("MLP block, gelu and swiglu") {
  for (Activation act : {Activation::gelu, Activation::swiglu}) {
    test::Tiny base;
    base.activation = act;
    each_config(base, [](const Scenario& s, DType dt) {
      auto r = test::check_piece(s, test::fwd_bwd([](ProgramBuilder& b, const Value& x, Tape& t) {
        return b.mlp_block_forward(0, x, t);
      }, s.model.hidden), dt);
      std::vector<std::string> tensors{"layer0.mlp.fc1.out", "layer0.mlp.act.out", "layer0.mlp.fc2.out",
                                       "layer0.mlp.fc1.grad", "layer0.mlp.fc2.grad", "x.grad"};
      if (s.model.activation == Activation::swiglu) tensors.push_back("layer0.mlp.gate.grad");
      require_pass(r, tensors);
    });
  }
}

TEST_CASE("attention block, multi-head and grouped-query") {
  for (int64_t kv : {12, 4}) {
    test::Tiny base;
    base.kv_heads = kv;
    each_config(base, [](const Scenario& s, DType dt) {
      auto r = test::check_piece(s, test::fwd_bwd([](ProgramBuilder& b, const Value& x, Tape& t) {
        return b.attention_block_forward(0, x, t);
      }, s.model.hidden), dt);
      require_pass(r, {"layer0.attn.qkv.out", "layer0.attn.core.out", "layer0.attn.proj.out", "layer0.attn.qkv.grad",
                       "layer0.attn.qkv.out.grad", "x.grad"});
    });
  }
}

TEST_CASE("vocab-parallel embedding") {
  each_config({}, [](const Scenario& s, DType dt) {
    auto r = test::check_piece(s, [](ProgramBuilder& b) {
      Tape t;
      const Value y = b.embedding_forward(t);
      b.backward(t, y, b.gradient_seed(y));
    }, dt);
    require_pass(r, {"embedding.out", "embedding.grad"});
  });
}

TEST_CASE("parallel output layer with vocab-parallel cross-entropy") {
  each_config({}, [](const Scenario& s, DType dt) {
    auto r = test::check_piece(s, [](ProgramBuilder& b) {
      Tape t;
      const Value x = b.input("x", b.scenario().model.hidden, b.stream_layout());
      const Value loss = b.output_loss_forward(x, t);
      b.backward(t, loss, "");
      b.gradient(x);
    }, dt);
    require_pass(r, {"output.out", "loss.max", "loss.sumexp", "loss.out", "output.grad", "final_norm.grad", "x.grad"});
  });
}

TEST_CASE("norms and residual: layernorm and rmsnorm, replicated and on sequence shards") {
  for (Norm norm : {Norm::layernorm, Norm::rmsnorm})
    for (bool sp : {false, true}) {
      test::Tiny base;
      base.norm = norm;
      base.sp = sp;
      each_config(base, [](const Scenario& s, DType dt) {
        auto r = test::check_piece(s, test::fwd_bwd([](ProgramBuilder& b, const Value& x, Tape& t) {
          return b.residual_forward("res", x, b.norm_forward("layer0.norm1", x, t), t);
        }, s.model.hidden), dt);
        require_pass(r, {"layer0.norm1.out", "res.out", "layer0.norm1.grad", "x.grad"});
      });
    }
}

TEST_CASE("whole layer with sequence parallelism (gelu + layernorm, swiglu + rmsnorm + GQA)") {
  for (bool llama : {false, true}) {
    test::Tiny base;
    base.sp = true;
    if (llama) base.activation = Activation::swiglu, base.norm = Norm::rmsnorm, base.kv_heads = 4;
    each_config(base, [](const Scenario& s, DType dt) {
      auto r = test::check(s, LowerScope::layer, true, dt);
      require_pass(r, {"layer0.norm1.out", "layer0.attn.residual.out", "layer0.mlp.residual.out", "layer0.norm1.grad",
                       "layer0.attn.qkv.grad", "layer0.mlp.fc2.grad", "input.grad"});
    });
  }
}

TEST_CASE("whole layer without sequence parallelism, naive plan too") {
  for (PlanPreset preset : {PlanPreset::megatron, PlanPreset::naive}) {
    test::Tiny base;
    base.preset = preset;
    each_config(base, [](const Scenario& s, DType dt) {
      require_pass(test::check(s, LowerScope::layer, true, dt), {"layer0.mlp.residual.out", "input.grad"});
    });
  }
}

TEST_CASE("small stack: embedding, two layers, output, loss; and over two pipeline stages") {
  for (int pp : {1, 2})
    for (bool sp : {false, true}) {
      test::Tiny base;
      base.layers = 2;
      base.sp = sp;
      base.activation = Activation::swiglu;
      base.kv_heads = 4;
      each_config(base, [pp](Scenario s, DType dt) {
        s.plan.pp = pp;
        CAPTURE(pp);
        require_pass(test::check(s, LowerScope::stack, true, dt),
                     {"embedding.out", "layer1.mlp.residual.out", "loss.out", "embedding.grad", "layer0.attn.qkv.grad",
                      "output.grad"});
      });
    }
}

TEST_CASE("micro-batches accumulate weight gradients like the unsharded run") {
  test::Tiny t;
  t.tp = 2;
  t.sp = true;
  const Scenario s = test::tiny_scenario(t);
  auto body = [](ProgramBuilder& b) {
    for (int mb = 0; mb < 2; ++mb) {
      b.set_micro_batch(mb);
      Tape tape;
      const Value x = b.input("x", b.scenario().model.hidden, b.stream_layout());
      const Value y = b.layer_forward(0, x, tape);
      b.backward(tape, y, b.gradient_seed(y));
    }
  };
  auto r = test::check_piece(s, body);
  require_pass(r, {"mb1.layer0.mlp.residual.out", "layer0.mlp.fc1.grad", "layer0.norm1.grad"});
}
