#include "rope/hf_config.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace rope_jit {
namespace {

using Json = nlohmann::json;

// A config.json is a few KiB; anything near this is not one.
constexpr size_t kMaxConfigBytes = 16 << 20;
constexpr double kDefaultTheta = 10000.0;
constexpr const char* kFullAttention = "full_attention";
constexpr const char* kSlidingAttention = "sliding_attention";

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", message));
}

std::string Num(double value) { return absl::StrFormat("%.17g", value); }

const char* TypeName(const Json& value) { return value.type_name(); }

// The DOM parser, recording the first syntax error instead of throwing it.
class RecordingParser : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  explicit RecordingParser(Json& root) : json_sax_dom_parser(root, /*allow_exceptions_=*/false) {}

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    if (error_.empty()) error_ = absl::StrCat(error.what(), " (byte ", position, ")");
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

absl::StatusOr<Json> ParseObject(absl::string_view text) {
  if (text.size() > kMaxConfigBytes) {
    return Invalid(absl::StrCat(text.size(), " bytes is more than a config.json can be (",
                                kMaxConfigBytes, ")"));
  }
  Json root;
  RecordingParser parser(root);
  const bool ok = Json::sax_parse(text.begin(), text.end(), &parser);
  if (!ok || root.is_discarded()) {
    return Invalid(absl::StrCat("not valid JSON: ",
                                parser.error().empty() ? "parse error" : parser.error()));
  }
  if (!root.is_object()) {
    return Invalid(absl::StrCat("the top level must be an object, got ", TypeName(root)));
  }
  return root;
}

// One JSON object and its path, for messages ("rope_scaling.factor"). Accessors return
// nullopt for an absent key and for JSON null (transformers treats both as unset), and
// InvalidArgument for a value of the wrong type; nothing here throws.
class Fields {
 public:
  Fields(const Json* object, std::string path) : object_(object), path_(std::move(path)) {}

  std::string Name(absl::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  }
  const std::string& path() const { return path_; }

  const Json* Find(absl::string_view key) const {
    auto it = object_->find(std::string(key));
    if (it == object_->end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool Has(absl::string_view key) const { return Find(key) != nullptr; }

  absl::StatusOr<std::optional<double>> Number(absl::string_view key) const {
    const Json* value = Find(key);
    if (value == nullptr) return std::optional<double>();
    if (!value->is_number()) return WrongType(key, "a number", *value);
    return std::optional<double>(value->get<double>());
  }

  // A number with an integral value (transformers writes some as 4096.0).
  absl::StatusOr<std::optional<int64_t>> Integer(absl::string_view key) const {
    ASSIGN_OR_RETURN(std::optional<double> number, Number(key));
    if (!number.has_value()) return std::optional<int64_t>();
    if (!(std::fabs(*number) < 9.0e15) || std::floor(*number) != *number) {
      return Invalid(absl::StrCat(Name(key), " must be an integer, got ", Num(*number)));
    }
    return std::optional<int64_t>(static_cast<int64_t>(*number));
  }

  absl::StatusOr<std::optional<std::string>> String(absl::string_view key) const {
    const Json* value = Find(key);
    if (value == nullptr) return std::optional<std::string>();
    if (!value->is_string()) return WrongType(key, "a string", *value);
    return std::optional<std::string>(value->get<std::string>());
  }

  absl::StatusOr<std::optional<bool>> Bool(absl::string_view key) const {
    const Json* value = Find(key);
    if (value == nullptr) return std::optional<bool>();
    if (!value->is_boolean()) return WrongType(key, "true or false", *value);
    return std::optional<bool>(value->get<bool>());
  }

  absl::StatusOr<std::optional<Fields>> Object(absl::string_view key) const {
    const Json* value = Find(key);
    if (value == nullptr) return std::optional<Fields>();
    if (!value->is_object()) return WrongType(key, "an object", *value);
    return std::optional<Fields>(Fields(value, Name(key)));
  }

  absl::StatusOr<std::optional<std::vector<double>>> NumberList(absl::string_view key) const {
    const Json* value = Find(key);
    if (value == nullptr) return std::optional<std::vector<double>>();
    if (!value->is_array()) return WrongType(key, "a list of numbers", *value);
    std::vector<double> numbers;
    numbers.reserve(value->size());
    for (size_t i = 0; i < value->size(); ++i) {
      const Json& element = (*value)[i];
      if (!element.is_number()) {
        return Invalid(absl::StrCat(Name(key), "[", i, "] must be a number, got ",
                                    TypeName(element)));
      }
      numbers.push_back(element.get<double>());
    }
    return std::optional<std::vector<double>>(std::move(numbers));
  }

  absl::StatusOr<int64_t> RequiredInteger(absl::string_view key) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> value, Integer(key));
    if (!value.has_value()) return Invalid(absl::StrCat(Name(key), " is missing"));
    return *value;
  }

  absl::StatusOr<double> RequiredNumber(absl::string_view key) const {
    ASSIGN_OR_RETURN(std::optional<double> value, Number(key));
    if (!value.has_value()) return Invalid(absl::StrCat(Name(key), " is missing"));
    return *value;
  }

  // Every member's key, sorted (nlohmann keeps objects sorted).
  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    for (auto it = object_->begin(); it != object_->end(); ++it) keys.push_back(it.key());
    return keys;
  }

 private:
  absl::Status WrongType(absl::string_view key, absl::string_view want, const Json& got) const {
    return Invalid(absl::StrCat(Name(key), " must be ", want, ", got ", TypeName(got)));
  }

  const Json* object_;
  std::string path_;
};

// Two spellings of one value that a config may both carry; they must agree.
absl::Status CheckSame(const Fields& a_fields, absl::string_view a_key, std::optional<double> a,
                       const Fields& b_fields, absl::string_view b_key, std::optional<double> b) {
  if (a.has_value() && b.has_value() && *a != *b) {
    return Invalid(absl::StrCat("contradictory fields: ", a_fields.Name(a_key), " = ", Num(*a),
                                " but ", b_fields.Name(b_key), " = ", Num(*b)));
  }
  return absl::OkStatus();
}

template <typename T>
std::optional<T> FirstOf(std::optional<T> a, std::optional<T> b) {
  return a.has_value() ? a : b;
}

bool PairsInterleaved(absl::string_view model_type) {
  for (const char* type : {"gptj", "codegen", "chatglm", "glm", "glm4", "deepseek_v2", "deepseek_v3",
                           "llama4", "llama4_text", "cohere", "cohere2"}) {
    if (model_type == type) return true;
  }
  return false;
}

bool IsDeepseekMla(absl::string_view model_type) {
  return model_type == "deepseek_v2" || model_type == "deepseek_v3";
}

// The parsed file: the top level and the object holding the text model's fields.
struct HfFile {
  std::unique_ptr<Json> root;  // on the heap: Fields point into it, and HfFile moves
  std::optional<Fields> top;
  std::optional<Fields> text;  // text_config when present, else the top level
  std::string model_type;      // the top level's, else text_config's
};

absl::StatusOr<HfFile> ReadFile(absl::string_view config_json) {
  HfFile file;
  ASSIGN_OR_RETURN(Json root, ParseObject(config_json));
  file.root = std::make_unique<Json>(std::move(root));
  file.top.emplace(file.root.get(), "");
  ASSIGN_OR_RETURN(std::optional<Fields> text_config, file.top->Object("text_config"));
  file.text = text_config.has_value() ? *text_config : *file.top;
  ASSIGN_OR_RETURN(std::optional<std::string> top_type, file.top->String("model_type"));
  ASSIGN_OR_RETURN(std::optional<std::string> text_type, file.text->String("model_type"));
  file.model_type = top_type.value_or(text_type.value_or(""));
  if (file.model_type.empty()) {
    // ChatGLM2/3's remote-code config.json names no model_type, only its architecture.
    const Json* architectures = file.top->Find("architectures");
    if (architectures != nullptr && architectures->is_array()) {
      for (const Json& name : *architectures) {
        if (name.is_string() && absl::StartsWith(name.get<std::string>(), "ChatGLM")) {
          file.model_type = "chatglm";
        }
      }
    }
  }
  return file;
}

// The RoPE parameter block: rope_parameters (transformers 5) or rope_scaling (4), both
// optional; for a per-layer-type rope_parameters, the layer type's entry.
struct ParamBlock {
  std::optional<Fields> block;
  std::vector<std::string> layer_types;  // non-empty: rope_parameters is keyed by layer type
};

absl::StatusOr<bool> IsKeyedByLayerType(const Fields& parameters) {
  const std::vector<std::string> keys = parameters.Keys();
  if (keys.empty()) return false;
  for (const std::string& key : keys) {
    if (key != kFullAttention && key != kSlidingAttention && key != "chunked_attention") {
      return false;
    }
    ASSIGN_OR_RETURN(std::optional<Fields> entry, parameters.Object(key));
    if (!entry.has_value()) {
      return Invalid(absl::StrCat(parameters.Name(key), " must be an object"));
    }
  }
  return true;
}

absl::StatusOr<ParamBlock> FindParamBlock(const Fields& text, absl::string_view layer_type) {
  ASSIGN_OR_RETURN(std::optional<Fields> parameters, text.Object("rope_parameters"));
  ASSIGN_OR_RETURN(std::optional<Fields> scaling, text.Object("rope_scaling"));
  ParamBlock result;
  if (parameters.has_value()) {
    ASSIGN_OR_RETURN(bool keyed, IsKeyedByLayerType(*parameters));
    if (keyed) {
      result.layer_types = parameters->Keys();
      if (layer_type.empty()) return result;
      ASSIGN_OR_RETURN(std::optional<Fields> entry, parameters->Object(layer_type));
      if (!entry.has_value()) {
        return Invalid(absl::StrCat("layer type '", layer_type, "' has no entry in ",
                                    parameters->path(), " (it has ",
                                    absl::StrJoin(result.layer_types, ", "), ")"));
      }
      result.block = entry;
      return result;
    }
  }
  if (parameters.has_value() && scaling.has_value()) {
    // Both spellings: they must not disagree on any value they share.
    for (const std::string& key : scaling->Keys()) {
      const Json* a = scaling->Find(key);
      const Json* b = parameters->Find(key);
      if (a != nullptr && b != nullptr && *a != *b) {
        return Invalid(absl::StrCat("contradictory fields: ", scaling->Name(key), " = ", a->dump(),
                                    " but ", parameters->Name(key), " = ", b->dump()));
      }
    }
  }
  result.block = parameters.has_value() ? parameters : scaling;
  return result;
}

absl::StatusOr<ScalingType> ParseRopeType(const Fields& block, bool* mrope) {
  ASSIGN_OR_RETURN(std::optional<std::string> rope_type, block.String("rope_type"));
  ASSIGN_OR_RETURN(std::optional<std::string> legacy_type, block.String("type"));
  if (rope_type.has_value() && legacy_type.has_value() && *rope_type != *legacy_type &&
      // transformers 4 writes rope_type "default" next to Qwen2-VL's legacy "mrope".
      !(*rope_type == "default" && *legacy_type == "mrope")) {
    return Invalid(absl::StrCat("contradictory fields: ", block.Name("rope_type"), " = '",
                                *rope_type, "' but ", block.Name("type"), " = '", *legacy_type, "'"));
  }
  const std::string field = rope_type.has_value() ? "rope_type" : "type";
  const std::string name = rope_type.value_or(legacy_type.value_or("default"));
  *mrope = name == "mrope" || (legacy_type.has_value() && *legacy_type == "mrope");
  if (name == "default" || name == "mrope") return ScalingType::kDefault;
  if (name == "linear") return ScalingType::kLinear;
  if (name == "dynamic") return ScalingType::kDynamic;
  if (name == "yarn") return ScalingType::kYarn;
  if (name == "llama3") return ScalingType::kLlama3;
  if (name == "longrope" || name == "su") return ScalingType::kLongrope;
  return Invalid(absl::StrCat(block.Name(field), " = '", name,
                              "' is not a rope type rope_jit knows (default, mrope, linear, "
                              "dynamic, yarn, longrope, su, llama3)"));
}

// `factor` of yarn and longrope: as given, else the context ratio transformers derives.
absl::StatusOr<double> RatioFactor(const Fields& block, int64_t max_position_embeddings,
                                   std::optional<int64_t> original) {
  ASSIGN_OR_RETURN(std::optional<double> factor, block.Number("factor"));
  if (factor.has_value()) return *factor;
  if (!original.has_value() || *original <= 0) return 1.0;
  return static_cast<double>(max_position_embeddings) / static_cast<double>(*original);
}

absl::Status ReadScaling(const Fields& block, const Fields& text, int64_t max_position_embeddings,
                         RopeConfig* config) {
  bool mrope = false;
  ASSIGN_OR_RETURN(const ScalingType type, ParseRopeType(block, &mrope));
  RopeScaling& s = config->scaling;
  s.type = type;
  ASSIGN_OR_RETURN(std::optional<int64_t> block_original,
                   block.Integer("original_max_position_embeddings"));
  ASSIGN_OR_RETURN(std::optional<int64_t> top_original,
                   text.Integer("original_max_position_embeddings"));
  if (block_original.has_value() && top_original.has_value() && *block_original != *top_original) {
    return Invalid(absl::StrCat("contradictory fields: ",
                                block.Name("original_max_position_embeddings"), " = ",
                                *block_original, " but original_max_position_embeddings = ",
                                *top_original));
  }
  const std::optional<int64_t> original = FirstOf(block_original, top_original);
  ASSIGN_OR_RETURN(s.attention_factor, block.Number("attention_factor"));

  switch (type) {
    case ScalingType::kDefault:
      break;
    case ScalingType::kLinear: {
      ASSIGN_OR_RETURN(s.factor, block.RequiredNumber("factor"));
      break;
    }
    case ScalingType::kDynamic: {
      ASSIGN_OR_RETURN(s.factor, block.RequiredNumber("factor"));
      // HF evaluates NTK against the model's own context, max_position_embeddings.
      s.original_max_position_embeddings = original.value_or(max_position_embeddings);
      break;
    }
    case ScalingType::kYarn: {
      s.original_max_position_embeddings = original.value_or(max_position_embeddings);
      ASSIGN_OR_RETURN(s.factor, RatioFactor(block, max_position_embeddings, original));
      ASSIGN_OR_RETURN(std::optional<double> beta_fast, block.Number("beta_fast"));
      ASSIGN_OR_RETURN(std::optional<double> beta_slow, block.Number("beta_slow"));
      // HF: `get("beta_fast") or 32`, so 0 means the default too.
      if (beta_fast.has_value() && *beta_fast != 0) s.beta_fast = *beta_fast;
      if (beta_slow.has_value() && *beta_slow != 0) s.beta_slow = *beta_slow;
      ASSIGN_OR_RETURN(s.mscale, block.Number("mscale"));
      ASSIGN_OR_RETURN(s.mscale_all_dim, block.Number("mscale_all_dim"));
      ASSIGN_OR_RETURN(std::optional<bool> truncate, block.Bool("truncate"));
      s.truncate = truncate.value_or(true);
      break;
    }
    case ScalingType::kLlama3: {
      ASSIGN_OR_RETURN(s.factor, block.RequiredNumber("factor"));
      ASSIGN_OR_RETURN(s.low_freq_factor, block.RequiredNumber("low_freq_factor"));
      ASSIGN_OR_RETURN(s.high_freq_factor, block.RequiredNumber("high_freq_factor"));
      if (!original.has_value()) {
        return Invalid(absl::StrCat(block.Name("original_max_position_embeddings"),
                                    " is missing (llama3 needs it)"));
      }
      s.original_max_position_embeddings = *original;
      break;
    }
    case ScalingType::kLongrope: {
      s.original_max_position_embeddings = original.value_or(max_position_embeddings);
      ASSIGN_OR_RETURN(s.factor, RatioFactor(block, max_position_embeddings, original));
      ASSIGN_OR_RETURN(std::optional<std::vector<double>> short_factor,
                       block.NumberList("short_factor"));
      ASSIGN_OR_RETURN(std::optional<std::vector<double>> long_factor,
                       block.NumberList("long_factor"));
      if (!short_factor.has_value()) return Invalid(absl::StrCat(block.Name("short_factor"), " is missing"));
      if (!long_factor.has_value()) return Invalid(absl::StrCat(block.Name("long_factor"), " is missing"));
      s.short_factor = std::move(*short_factor);
      s.long_factor = std::move(*long_factor);
      break;
    }
  }

  ASSIGN_OR_RETURN(std::optional<std::vector<double>> section, block.NumberList("mrope_section"));
  ASSIGN_OR_RETURN(std::optional<bool> interleaved, block.Bool("mrope_interleaved"));
  if (section.has_value()) {
    for (size_t i = 0; i < section->size(); ++i) {
      const double value = (*section)[i];
      if (std::floor(value) != value || !(std::fabs(value) < 1e6)) {
        return Invalid(absl::StrCat(block.Name("mrope_section"), "[", i, "] must be an integer, got ",
                                    Num(value)));
      }
      config->mrope_section.push_back(static_cast<int>(value));
    }
    config->mrope_interleaved = interleaved.value_or(false);
    config->position_columns = static_cast<int>(config->mrope_section.size());
  } else if (mrope) {
    return Invalid(absl::StrCat(block.Name("type"), " is 'mrope' but ", block.Name("mrope_section"),
                                " is missing"));
  } else if (interleaved.value_or(false)) {
    return Invalid(absl::StrCat(block.Name("mrope_interleaved"), " is true but ",
                                block.Name("mrope_section"), " is missing"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> HeadDim(const Fields& text, absl::string_view model_type) {
  if (IsDeepseekMla(model_type)) {
    ASSIGN_OR_RETURN(int64_t rope_dim, text.RequiredInteger("qk_rope_head_dim"));
    return static_cast<int>(rope_dim);
  }
  const bool gptj = model_type == "gptj";
  const char* hidden_key = gptj ? "n_embd" : "hidden_size";
  const char* heads_key = gptj ? "n_head" : "num_attention_heads";
  ASSIGN_OR_RETURN(std::optional<int64_t> head_dim,
                   text.Integer(model_type == "chatglm" ? "kv_channels" : "head_dim"));
  if (head_dim.has_value()) {
    if (*head_dim < 1 || *head_dim > (1 << 20)) {
      return Invalid(absl::StrCat(text.Name("head_dim"), " = ", *head_dim, " is out of range"));
    }
    return static_cast<int>(*head_dim);
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> hidden, text.Integer(hidden_key));
  ASSIGN_OR_RETURN(std::optional<int64_t> heads, text.Integer(heads_key));
  if (!hidden.has_value() || !heads.has_value()) {
    return Invalid(absl::StrCat("head_dim is missing and so is ", text.Name(hidden ? heads_key : hidden_key),
                                " (head_dim = ", hidden_key, " / ", heads_key, ")"));
  }
  if (*heads < 1 || *hidden < 1 || *hidden % *heads != 0 || *hidden / *heads > (1 << 20)) {
    return Invalid(absl::StrCat(text.Name(hidden_key), " = ", *hidden, " is not a multiple of ",
                                text.Name(heads_key), " = ", *heads));
  }
  return static_cast<int>(*hidden / *heads);
}

absl::StatusOr<int> RotaryDim(const Fields& text, const std::optional<Fields>& block,
                              absl::string_view model_type, int head_dim) {
  if (model_type == "chatglm") return head_dim / 2;  // RotaryEmbedding(rotary_dim // 2)
  ASSIGN_OR_RETURN(std::optional<int64_t> rotary_dim, text.Integer("rotary_dim"));
  std::optional<double> block_factor;
  if (block.has_value()) {
    ASSIGN_OR_RETURN(block_factor, block->Number("partial_rotary_factor"));
  }
  ASSIGN_OR_RETURN(std::optional<double> top_factor, text.Number("partial_rotary_factor"));
  ASSIGN_OR_RETURN(std::optional<double> rotary_pct, text.Number("rotary_pct"));
  if (block.has_value()) {
    RETURN_IF_ERROR(CheckSame(*block, "partial_rotary_factor", block_factor, text,
                              "partial_rotary_factor", top_factor));
  }
  RETURN_IF_ERROR(CheckSame(text, "partial_rotary_factor", top_factor, text, "rotary_pct", rotary_pct));
  std::optional<double> factor = FirstOf(FirstOf(block_factor, top_factor), rotary_pct);
  if (!factor.has_value() && model_type == "gpt_neox") factor = 0.25;  // GPTNeoXConfig default
  if (factor.has_value() && !(*factor > 0 && *factor <= 1)) {
    return Invalid(absl::StrCat("partial_rotary_factor must be in (0, 1], got ", Num(*factor)));
  }
  if (rotary_dim.has_value()) {
    if (*rotary_dim < 1 || *rotary_dim > head_dim) {
      return Invalid(absl::StrCat(text.Name("rotary_dim"), " = ", *rotary_dim,
                                  " is outside [1, head_dim = ", head_dim, "]"));
    }
    if (factor.has_value() && static_cast<int64_t>(head_dim * *factor) != *rotary_dim) {
      return Invalid(absl::StrCat("contradictory fields: ", text.Name("rotary_dim"), " = ",
                                  *rotary_dim, " but head_dim ", head_dim, " * partial_rotary_factor ",
                                  Num(*factor), " = ", static_cast<int64_t>(head_dim * *factor)));
    }
    return static_cast<int>(*rotary_dim);
  }
  // HF: dim = int(head_dim * partial_rotary_factor).
  return static_cast<int>(head_dim * factor.value_or(1.0));
}

absl::StatusOr<double> Theta(const Fields& text, const std::optional<Fields>& block,
                             absl::string_view model_type) {
  std::optional<double> block_theta;
  if (block.has_value()) {
    ASSIGN_OR_RETURN(block_theta, block->Number("rope_theta"));
  }
  ASSIGN_OR_RETURN(std::optional<double> top_theta, text.Number("rope_theta"));
  ASSIGN_OR_RETURN(std::optional<double> neox_base, text.Number("rotary_emb_base"));
  if (block.has_value()) {
    RETURN_IF_ERROR(CheckSame(*block, "rope_theta", block_theta, text, "rope_theta", top_theta));
  }
  RETURN_IF_ERROR(CheckSame(text, "rope_theta", top_theta, text, "rotary_emb_base", neox_base));
  if (model_type == "chatglm") {
    ASSIGN_OR_RETURN(std::optional<double> ratio, text.Number("rope_ratio"));
    return kDefaultTheta * ratio.value_or(1.0);
  }
  return FirstOf(FirstOf(block_theta, top_theta), neox_base).value_or(kDefaultTheta);
}

absl::StatusOr<int64_t> MaxPosition(const Fields& text, absl::string_view model_type,
                                    bool chatglm_v1) {
  const char* key = "max_position_embeddings";
  if (model_type == "gptj") key = "n_positions";
  if (model_type == "chatglm") key = chatglm_v1 ? "max_sequence_length" : "seq_length";
  return text.RequiredInteger(key);
}

// Gemma-3 in transformers 4: sliding layers use rope_local_base_freq and no scaling.
absl::StatusOr<bool> HasLocalBase(const Fields& text) {
  ASSIGN_OR_RETURN(std::optional<double> local, text.Number("rope_local_base_freq"));
  return local.has_value();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> HfConfigLayerTypes(absl::string_view config_json) {
  ASSIGN_OR_RETURN(HfFile file, ReadFile(config_json));
  ASSIGN_OR_RETURN(ParamBlock block, FindParamBlock(*file.text, ""));
  if (!block.layer_types.empty()) return block.layer_types;
  ASSIGN_OR_RETURN(bool local_base, HasLocalBase(*file.text));
  if (local_base) return std::vector<std::string>{kFullAttention, kSlidingAttention};
  return std::vector<std::string>();
}

absl::StatusOr<RopeConfig> RopeConfigFromHfConfig(absl::string_view config_json, DType dtype,
                                                  absl::string_view layer_type) {
  ASSIGN_OR_RETURN(HfFile file, ReadFile(config_json));
  const Fields& text = *file.text;
  const std::string& model_type = file.model_type;

  ASSIGN_OR_RETURN(ParamBlock params, FindParamBlock(text, layer_type));
  if (!params.layer_types.empty() && layer_type.empty()) {
    return Invalid(absl::StrCat("RoPE parameters differ by layer type (",
                                absl::StrJoin(params.layer_types, ", "), "); pass a layer type"));
  }
  ASSIGN_OR_RETURN(bool local_base, HasLocalBase(text));
  bool sliding_local = false;
  if (local_base && params.layer_types.empty()) {
    if (layer_type.empty()) {
      return Invalid(absl::StrCat("RoPE parameters differ by layer type (", kFullAttention, ": ",
                                  "rope_theta, ", kSlidingAttention,
                                  ": rope_local_base_freq); pass a layer type"));
    }
    if (layer_type != kFullAttention && layer_type != kSlidingAttention) {
      return Invalid(absl::StrCat("layer type '", layer_type, "' is neither ", kFullAttention,
                                  " nor ", kSlidingAttention));
    }
    sliding_local = layer_type == kSlidingAttention;
  }

  ASSIGN_OR_RETURN(std::optional<bool> position_2d, text.Bool("position_encoding_2d"));
  const bool chatglm_v1 = model_type == "chatglm" && position_2d.value_or(false);

  RopeConfig config;
  config.dtype = dtype;
  ASSIGN_OR_RETURN(config.head_dim, HeadDim(text, model_type));
  ASSIGN_OR_RETURN(config.max_position, MaxPosition(text, model_type, chatglm_v1));
  const int64_t max_position_embeddings = config.max_position;
  if (chatglm_v1) {
    // ChatGLM-6B: RotaryEmbedding(head_dim // 2) per half, rotate-half pairing, base 10000.
    const RopeConfig v1 = RopeConfig::ChatGlmV1(config.head_dim, dtype, config.max_position);
    RETURN_IF_ERROR(ValidateConfig(v1));
    return v1;
  }
  config.style = PairsInterleaved(model_type) ? RopeStyle::kInterleaved : RopeStyle::kNeox;
  ASSIGN_OR_RETURN(config.rotary_dim, RotaryDim(text, params.block, model_type, config.head_dim));
  ASSIGN_OR_RETURN(config.theta, Theta(text, params.block, model_type));
  if (sliding_local) {
    ASSIGN_OR_RETURN(config.theta, text.RequiredNumber("rope_local_base_freq"));
  } else if (params.block.has_value()) {
    RETURN_IF_ERROR(ReadScaling(*params.block, text, max_position_embeddings, &config));
  }
  RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

absl::StatusOr<std::optional<DType>> HfConfigDType(absl::string_view config_json) {
  ASSIGN_OR_RETURN(HfFile file, ReadFile(config_json));
  std::optional<std::string> name;
  for (const Fields* fields : {&*file.top, &*file.text}) {
    for (const char* key : {"torch_dtype", "dtype"}) {
      if (name.has_value()) break;
      ASSIGN_OR_RETURN(name, fields->String(key));
    }
  }
  if (!name.has_value()) return std::optional<DType>();
  if (*name == "bfloat16") return std::optional<DType>(DType::kBF16);
  if (*name == "float16") return std::optional<DType>(DType::kF16);
  if (*name == "float32") return std::optional<DType>(DType::kF32);
  return std::optional<DType>();
}

}  // namespace rope_jit
