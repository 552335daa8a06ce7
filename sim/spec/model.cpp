// Model YAML -> ModelSpec (see models/llama2-7b.yaml). kv_heads defaults to heads (multi-head
// attention); ffn defaults to 4*hidden for gelu, and must be given for swiglu (no standard ratio).
#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {

ModelSpec read_model(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  if (is_hf_config(root)) return read_hf_config(src, root, fallback_name);
  const Map m(src, root, "model");
  m.only({"name", "hidden", "ffn", "heads", "kv_heads", "layers", "vocab", "max_seq", "activation", "norm", "dtype"});
  ModelSpec model;
  model.name = m.string("name", fallback_name);
  model.hidden = m.integer_up_to("hidden", limits::kHidden, "a hidden size");
  model.heads = m.integer_up_to("heads", limits::kHeads, "attention heads");
  model.kv_heads = m.integer_up_to("kv_heads", limits::kHeads, "key/value heads", model.heads);
  model.layers = m.integer_up_to("layers", limits::kLayers, "layers");
  model.vocab = m.integer_up_to("vocab", limits::kVocab, "a vocabulary size");
  model.max_seq = m.integer_up_to("max_seq", limits::kSequence, "tokens");
  const std::string act = m.choice("activation", {"gelu", "swiglu"}, "gelu");
  model.activation = act == "swiglu" ? Activation::swiglu : Activation::gelu;
  if (model.activation == Activation::swiglu && !m.has("ffn"))
    m.fail_here("missing required key 'ffn' (swiglu has no standard ffn size; gelu defaults to 4*hidden)");
  model.ffn = m.integer_up_to("ffn", limits::kFfn, "an FFN size", 4 * model.hidden);
  model.norm = m.choice("norm", {"layernorm", "rmsnorm"}, "layernorm") == "rmsnorm" ? Norm::rmsnorm : Norm::layernorm;
  const std::string dtype = m.choice("dtype", {"fp32", "tf32", "bf16", "fp16", "fp8"}, "bf16");
  for (DType d : {DType::fp32, DType::tf32, DType::bf16, DType::fp16, DType::fp8})
    if (dtype == to_string(d)) model.dtype = d;
  return model;
}

}  // namespace tpsim::spec_detail
