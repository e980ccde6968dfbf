#include "rope/config.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rope_jit {
namespace {

// Expected values below were computed independently of this library: Hugging Face
// transformers' modeling_rope_utils formulas re-implemented with mpmath at 50 digits,
// then rounded to double.

// dynamic: theta 10000, d 128, factor 2, original 4096, max_position 16384
// (base = 10000 * 7^(128/126)).
constexpr double kDynamicInvFreq[] = {
    1.0, 0.8396257425643114, 0.7049713875766713, 0.5919121247806556,
    0.4969846573017773, 0.4172811119300746, 0.35035996346235043, 0.294171244486881,
    0.24699374959336504, 0.2073823104110727, 0.17412352637359943, 0.14619859512934988,
    0.12275210399733952, 0.10306582647009777, 0.0865367210829603, 0.07265845869836124,
    0.06100591233818991, 0.051222134447765987, 0.043007422671434516, 0.0361101391962804,
    0.03031900243677758, 0.025456614934788544, 0.02137402921779557, 0.017946185153582893,
    0.015068079035773656, 0.01265154704942919, 0.010622564585964306, 0.008918978678427638,
    0.007488604095790066, 0.006287624774697878, 0.005279251620421466, 0.0044325955619802185,
    0.0037217213402149117, 0.0031248530438953894, 0.002623707057385015, 0.0022029319863281177,
    0.0018496384048394194, 0.0015530040191387658, 0.0013039421527747464, 0.0010948233982844033,
    0.0009192419087613249, 0.0007718191702399624, 0.0006480392439380991, 0.0005441104314023414,
    0.00045684912500317866, 0.0003835822858206498, 0.000322065561566679, 0.00027041453628481486,
    0.00022704700582832157, 0.00019063451086560805, 0.00016006164274392045, 0.00013439187564492772,
    0.00011283887838298304, 9.474242705243616e-05, 7.95481806662468e-05, 6.679070026153748e-05,
    5.607919130348375e-05, 4.708553264059362e-05, 3.953422530739454e-05, 3.319395328042593e-05,
    2.7870497671722683e-05, 2.340078730325707e-05, 1.9647903416086728e-05, 1.6496885495563687e-05};

// yarn: theta 10000, d 64, factor 4, original 4096, beta 32/1, truncate (ramp 10..23).
constexpr double kYarnInvFreq[] = {
    1.0, 0.7498942093324559, 0.5623413251903491, 0.4216965034285822,
    0.31622776601683794, 0.23713737056616552, 0.1778279410038923, 0.1333521432163324,
    0.1, 0.07498942093324558, 0.05623413251903491, 0.03973678590000102,
    0.027973994686104894, 0.01960943641220215, 0.013679072384914791, 0.009488517882700574,
    0.006538461538461538, 0.004470523171020409, 0.0030279917510249565, 0.0020273870357143376,
    0.0013378867023789297, 0.0008664634693763741, 0.0005471628953965916, 0.000333380358040831,
    0.00025, 0.00018747355233311396, 0.00014058533129758727, 0.00010542412585714556,
    7.905694150420948e-05, 5.9284342641541385e-05, 4.445698525097307e-05, 3.33380358040831e-05};
constexpr double kYarnAttention = 1.138629436111989;  // 0.1 * ln 4 + 1

// The same with truncate = false (ramp 10.4722..22.5134).
constexpr double kYarnNoTruncateInvFreq[] = {
    1.0, 0.7498942093324559, 0.5623413251903491, 0.4216965034285822,
    0.31622776601683794, 0.23713737056616552, 0.1778279410038923, 0.1333521432163324,
    0.1, 0.07498942093324558, 0.05623413251903491, 0.04078344584405299,
    0.028613608811988895, 0.019980142130655614, 0.013875371073024077, 0.009574461236755236,
    0.006556971521129435, 0.004449954729045007, 0.0029867345117775513, 0.0019770763910225402,
    0.001285632030726688, 0.0008163842726183704, 0.0005014396573872046, 0.000333380358040831,
    0.00025, 0.00018747355233311396, 0.00014058533129758727, 0.00010542412585714556,
    7.905694150420948e-05, 5.9284342641541385e-05, 4.445698525097307e-05, 3.33380358040831e-05};

// DeepSeek-like yarn: theta 10000, d 64, factor 40, original 4096,
// mscale = mscale_all_dim = 0.707 (attention factor exactly 1).
constexpr double kYarnDeepseekInvFreq[] = {
    1.0, 0.7498942093324559, 0.5623413251903491, 0.4216965034285822,
    0.31622776601683794, 0.23713737056616552, 0.1778279410038923, 0.1333521432163324,
    0.1, 0.07498942093324558, 0.05623413251903491, 0.03900692656714386,
    0.026879360111431223, 0.018378146218877827, 0.01244795587027246, 0.008334508951020775,
    0.0055, 0.003561997494329165, 0.0022493653007613964, 0.0013705136361428923,
    0.0007905694150420948, 0.0004149903984907897, 0.00017782794100389227, 3.33380358040831e-05,
    2.5e-05, 1.8747355233311396e-05, 1.4058533129758727e-05, 1.0542412585714556e-05,
    7.905694150420949e-06, 5.9284342641541385e-06, 4.445698525097307e-06, 3.33380358040831e-06};
// factor 40, mscale 1.0, mscale_all_dim 0.707: get_mscale(40, 1) / get_mscale(40, 0.707).
constexpr double kYarnMscaleRatioAttention = 1.0857263992561357;

// llama3: theta 500000, d 128, factor 8, low 1, high 4, original 8192.
constexpr double kLlama3InvFreq[] = {
    1.0, 0.8146172338565447, 0.6636012376960885, 0.540581004635767,
    0.44036660267178046, 0.3587302237512899, 0.2922278225730151, 0.23805382048035073,
    0.19392274474868576, 0.1579728099090432, 0.12868737343265052, 0.10483095217796996,
    0.08539710028576561, 0.06956594961416032, 0.05666962144529105, 0.04616405026546052,
    0.03760603093086393, 0.030634520893224042, 0.024955408670558694, 0.020329105980970152,
    0.016560440080994446, 0.013490419890226748, 0.010989528534539826, 0.0089522593361944,
    0.007292664737217109, 0.005940730375674967, 0.004839421345719893, 0.003942276030116656,
    0.003211445994752591, 0.0021665707635033587, 0.0013718935677611381, 0.0008567514129196321,
    0.0005248461609929547, 0.0003126937503840651, 0.0001785078127679964, 9.556212353964683e-05,
    7.78465527393245e-05, 6.341514345777615e-05, 5.165906874818956e-05, 4.208236768725526e-05,
    3.428102195952591e-05, 2.7925911282444468e-05, 2.2748928601828183e-05, 1.8531669290821308e-05,
    1.509621717643313e-05, 1.2297638677963614e-05, 1.0017868402809974e-05, 8.160728247435943e-06,
    6.647869871181235e-06, 5.415469365499922e-06, 4.411534674558404e-06, 3.5937121736509995e-06,
    2.9274998701761677e-06, 2.3847918463583033e-06, 1.942692537204043e-06, 1.58255082089091e-06,
    1.2891731721515574e-06, 1.0501826834601687e-06, 8.554969126443659e-07, 6.969025285511674e-07,
    5.677088100759837e-07, 4.6246538050008837e-07, 3.767322690173964e-07, 3.068925988914511e-07};

// longrope: theta 10000, head_dim 64, rotary_dim 8 (d 8), factor 4, original 4096.
const std::vector<double> kShortFactor = {1.0, 1.05, 1.2, 1.5};
const std::vector<double> kLongFactor = {1.0, 2.0, 4.5, 9.0};
constexpr double kLongropeLongInvFreq[] = {1.0, 0.05, 0.0022222222222222222,
                                           0.00011111111111111112};
constexpr double kLongropeShortInvFreq[] = {1.0, 0.09523809523809523, 0.008333333333333333,
                                            0.0006666666666666666};
constexpr double kLongropeAttention = 1.0801234497346435;  // sqrt(1 + ln 4 / ln 4096)

constexpr double kRelTol = 1e-12;

void ExpectRelNear(double actual, double expected, const std::string& what) {
  EXPECT_NEAR(actual, expected, kRelTol * std::fabs(expected)) << what;
}

template <size_t N>
void ExpectInvFreq(const RopeFrequencies& freqs, const double (&expected)[N]) {
  ASSERT_EQ(freqs.inv_freq.size(), N);
  for (size_t i = 0; i < N; ++i) {
    ExpectRelNear(freqs.inv_freq[i], expected[i], "inv_freq[" + std::to_string(i) + "]");
  }
}

RopeFrequencies MustCompute(const RopeConfig& config) {
  absl::StatusOr<RopeFrequencies> freqs = ComputeFrequencies(config);
  EXPECT_TRUE(freqs.ok()) << freqs.status();
  return freqs.ok() ? *std::move(freqs) : RopeFrequencies{};
}

RopeConfig YarnConfig(double factor) {
  RopeConfig config;
  config.head_dim = 64;
  config.theta = 10000;
  config.max_position = 4096 * 4;
  config.scaling.type = ScalingType::kYarn;
  config.scaling.factor = factor;
  config.scaling.original_max_position_embeddings = 4096;
  return config;
}

RopeConfig Llama3Config() {
  RopeConfig config;
  config.head_dim = 128;
  config.theta = 500000;
  config.max_position = 131072;
  config.scaling.type = ScalingType::kLlama3;
  config.scaling.factor = 8;
  config.scaling.low_freq_factor = 1;
  config.scaling.high_freq_factor = 4;
  config.scaling.original_max_position_embeddings = 8192;
  return config;
}

RopeConfig LongropeConfig(int64_t max_position) {
  RopeConfig config;
  config.head_dim = 64;
  config.rotary_dim = 8;
  config.theta = 10000;
  config.max_position = max_position;
  config.scaling.type = ScalingType::kLongrope;
  config.scaling.factor = 4;
  config.scaling.original_max_position_embeddings = 4096;
  config.scaling.short_factor = kShortFactor;
  config.scaling.long_factor = kLongFactor;
  return config;
}

struct Rejection {
  const char* what;
  std::function<void(RopeConfig&)> mutate;
  const char* field;  // must appear in the message
  const char* value;  // the bad value, as printed
};

TEST(ConfigTest, ValidateRejectsEachBadField) {
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  const std::vector<Rejection> rejections = {
      {"head_dim small", [](RopeConfig& c) { c.head_dim = 30; }, "head_dim", "30"},
      {"head_dim large", [](RopeConfig& c) { c.head_dim = 514; }, "head_dim", "514"},
      {"head_dim odd", [](RopeConfig& c) { c.head_dim = 33; }, "head_dim", "33"},
      {"position_columns 0", [](RopeConfig& c) { c.position_columns = 0; }, "position_columns",
       "0"},
      {"position_columns 3 without mrope_section",
       [](RopeConfig& c) { c.position_columns = 3; }, "position_columns", "3"},
      {"position_columns 4", [](RopeConfig& c) { c.position_columns = 4; }, "position_columns",
       "4"},
      {"mrope_section with 1 column",
       [](RopeConfig& c) { c.mrope_section = {16, 24, 24}; }, "position_columns", "1"},
      {"mrope_section of 2",
       [](RopeConfig& c) {
         c.position_columns = 3;
         c.mrope_section = {32, 32};
       },
       "mrope_section", "2 entries"},
      {"mrope_section negative",
       [](RopeConfig& c) {
         c.position_columns = 3;
         c.mrope_section = {40, -8, 32};
       },
       "mrope_section[1]", "-8"},
      {"mrope_section sum",
       [](RopeConfig& c) {
         c.position_columns = 3;
         c.mrope_section = {16, 24, 20};
       },
       "mrope_section", "16, 24, 20 (sum 60)"},
      {"mrope_section sum with partial rotary",
       [](RopeConfig& c) {
         c.position_columns = 3;
         c.rotary_dim = 64;
         c.mrope_section = {16, 24, 24};
       },
       "mrope_section", "16, 24, 24 (sum 64)"},
      {"rotary_dim negative", [](RopeConfig& c) { c.rotary_dim = -2; }, "rotary_dim", "-2"},
      {"rotary_dim > head_dim", [](RopeConfig& c) { c.rotary_dim = 130; }, "rotary_dim", "130"},
      {"rotary_dim odd", [](RopeConfig& c) { c.rotary_dim = 63; }, "rotary_dim", "63"},
      {"rotary_dim not a multiple of 4 with 2 columns",
       [](RopeConfig& c) {
         c.position_columns = 2;
         c.rotary_dim = 66;
       },
       "rotary_dim", "66"},
      {"theta zero", [](RopeConfig& c) { c.theta = 0; }, "theta", "0"},
      {"theta negative", [](RopeConfig& c) { c.theta = -10000; }, "theta", "-10000"},
      {"theta inf", [kInf](RopeConfig& c) { c.theta = kInf; }, "theta", "inf"},
      {"theta nan", [kNan](RopeConfig& c) { c.theta = kNan; }, "theta", "nan"},
      {"max_position 0", [](RopeConfig& c) { c.max_position = 0; }, "max_position", "0"},
      {"max_position 2^31", [](RopeConfig& c) { c.max_position = int64_t{1} << 31; },
       "max_position", "2147483648"},
      {"dtype", [](RopeConfig& c) { c.dtype = static_cast<DType>(7); }, "dtype", "7"},
      {"style", [](RopeConfig& c) { c.style = static_cast<RopeStyle>(5); }, "style", "5"},
      {"scaling type", [](RopeConfig& c) { c.scaling.type = static_cast<ScalingType>(99); },
       "scaling.type", "99"},
      {"linear factor < 1",
       [](RopeConfig& c) {
         c.scaling.type = ScalingType::kLinear;
         c.scaling.factor = 0.5;
       },
       "scaling.factor", "0.5"},
      {"yarn factor nan",
       [kNan](RopeConfig& c) {
         c.scaling.type = ScalingType::kYarn;
         c.scaling.factor = kNan;
       },
       "scaling.factor", "nan"},
      {"longrope factor inf",
       [kInf](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.factor = kInf;
       },
       "scaling.factor", "inf"},
      {"original negative",
       [](RopeConfig& c) {
         c.scaling.type = ScalingType::kYarn;
         c.scaling.original_max_position_embeddings = -1;
       },
       "scaling.original_max_position_embeddings", "-1"},
      {"dynamic without original",
       [](RopeConfig& c) {
         c.scaling.type = ScalingType::kDynamic;
         c.scaling.factor = 2;
       },
       "scaling.original_max_position_embeddings", "0"},
      {"dynamic with one pair per segment",
       [](RopeConfig& c) {
         c.rotary_dim = 2;
         c.scaling.type = ScalingType::kDynamic;
         c.scaling.factor = 2;
         c.scaling.original_max_position_embeddings = 4096;
       },
       "rotary_dim", "2"},
      {"llama3 without original",
       [](RopeConfig& c) {
         c = Llama3Config();
         c.scaling.original_max_position_embeddings = 0;
       },
       "scaling.original_max_position_embeddings", "0"},
      {"llama3 low_freq_factor zero",
       [](RopeConfig& c) {
         c = Llama3Config();
         c.scaling.low_freq_factor = 0;
       },
       "scaling.low_freq_factor", "0"},
      {"llama3 high == low",
       [](RopeConfig& c) {
         c = Llama3Config();
         c.scaling.high_freq_factor = 1;
       },
       "scaling.high_freq_factor", "1"},
      {"yarn attention_factor zero",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.attention_factor = 0.0;
       },
       "scaling.attention_factor", "0"},
      {"longrope attention_factor nan",
       [kNan](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.attention_factor = kNan;
       },
       "scaling.attention_factor", "nan"},
      {"yarn theta 1",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.theta = 1;
       },
       "theta", "1"},
      {"yarn beta_fast zero",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.beta_fast = 0;
       },
       "scaling.beta_fast", "0"},
      {"yarn beta_slow negative",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.beta_slow = -1;
       },
       "scaling.beta_slow", "-1"},
      {"yarn mscale negative",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.mscale = -0.5;
       },
       "scaling.mscale", "-0.5"},
      {"yarn mscale_all_dim inf",
       [kInf](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.mscale_all_dim = kInf;
       },
       "scaling.mscale_all_dim", "inf"},
      {"longrope short list too short",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.short_factor.pop_back();
       },
       "scaling.short_factor", "3 entries"},
      {"longrope long list too long",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.long_factor.push_back(1.0);
       },
       "scaling.long_factor", "5 entries"},
      {"longrope zero entry",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.long_factor[2] = 0.0;
       },
       "scaling.long_factor[2]", "0"},
      {"longrope negative entry",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.short_factor[1] = -1.0;
       },
       "scaling.short_factor[1]", "-1"},
      {"longrope ln(original) = 0",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.original_max_position_embeddings = 1;
       },
       "scaling.original_max_position_embeddings", "1"},
  };
  for (const Rejection& rejection : rejections) {
    RopeConfig config;
    rejection.mutate(config);
    const absl::Status status = ValidateConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << rejection.what;
    const std::string message(status.message());
    EXPECT_NE(message.find(rejection.field), std::string::npos)
        << rejection.what << ": " << message;
    EXPECT_NE(message.find(std::string("got ") + rejection.value), std::string::npos)
        << rejection.what << ": " << message;
    // ComputeFrequencies validates too.
    EXPECT_EQ(ComputeFrequencies(config).status().code(), absl::StatusCode::kInvalidArgument)
        << rejection.what;
  }
}

// Inputs that pass every field check but whose frequencies a kernel cannot use (issue 14,
// item 3): ValidateConfig and ComputeFrequencies both refuse them, naming the output.
TEST(ConfigTest, RejectsConfigsWhoseFrequenciesAreNotUsable) {
  struct Case {
    const char* what;
    std::function<void(RopeConfig&)> mutate;
    const char* expect_in_message;
  };
  const std::vector<Case> cases = {
      {"yarn attention_factor 1e300 (inf as a float)",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.attention_factor = 1e300;
       },
       "attention factor 1.0000000000000001e+300"},
      {"yarn attention_factor 1e-300 (0 as a float)",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.attention_factor = 1e-300;
       },
       "attention factor 1e-300"},
      {"longrope attention_factor 1e-40 (a float subnormal)",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.attention_factor = 1e-40;
       },
       "attention factor 9.9999999999999993e-41"},
      {"yarn mscale 1e300",
       [](RopeConfig& c) {
         c = YarnConfig(4);
         c.scaling.mscale = 1e300;
         c.scaling.mscale_all_dim = 1;
       },
       "attention factor"},
      {"theta 4.9e-324",
       [](RopeConfig& c) { c.theta = 4.9e-324; },
       "inv_freq["},
      {"longrope factor 1e-320",
       [](RopeConfig& c) {
         c = LongropeConfig(16384);
         c.scaling.long_factor[3] = 1e-320;
       },
       "inv_freq[3]"},
      // Finite, but position * inv_freq leaves the range where the kernels reduce the
      // phase exactly (2^50 quarter turns).
      {"theta 1e-10",
       [](RopeConfig& c) {
         c.theta = 1e-10;
         c.max_position = int64_t{1} << 30;
       },
       "max_position"},
  };
  for (const Case& c : cases) {
    RopeConfig config;
    c.mutate(config);
    const absl::Status status = ValidateConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << status;
    EXPECT_NE(std::string(status.message()).find(c.expect_in_message), std::string::npos)
        << c.what << ": " << status;
    EXPECT_EQ(ComputeFrequencies(config).status().code(), absl::StatusCode::kInvalidArgument)
        << c.what;
  }
  // Extreme but usable: a tiny theta's table at a small max_position, a large factor.
  RopeConfig small_theta;
  small_theta.theta = 1e-10;
  small_theta.max_position = 16;
  EXPECT_TRUE(ValidateConfig(small_theta).ok()) << ValidateConfig(small_theta);
  RopeConfig big_factor = YarnConfig(4);
  big_factor.scaling.attention_factor = 1e30;
  EXPECT_TRUE(ValidateConfig(big_factor).ok());
}

TEST(ConfigTest, ValidateAcceptsLimitsAndIgnoresUnusedScalingFields) {
  for (int head_dim : {32, 64, 72, 80, 96, 128, 256, 512}) {
    RopeConfig config;
    config.head_dim = head_dim;
    EXPECT_TRUE(ValidateConfig(config).ok()) << head_dim;
  }
  RopeConfig config;
  config.max_position = 1;
  EXPECT_TRUE(ValidateConfig(config).ok());
  config.max_position = (int64_t{1} << 31) - 1;
  EXPECT_TRUE(ValidateConfig(config).ok());
  config.rotary_dim = 2;
  EXPECT_TRUE(ValidateConfig(config).ok());
  // The default variant reads no scaling parameter, so junk there is harmless.
  config.scaling.factor = -3;
  config.scaling.short_factor = {1.0};
  EXPECT_TRUE(ValidateConfig(config).ok());
}

TEST(ConfigTest, NamesDTypesAndStyles) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kF16), 2);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_STREQ(DTypeName(DType::kF32), "f32");
  EXPECT_STREQ(DTypeName(DType::kF16), "f16");
  EXPECT_STREQ(DTypeName(DType::kBF16), "bf16");
  EXPECT_STREQ(StyleName(RopeStyle::kNeox), "neox");
  EXPECT_STREQ(StyleName(RopeStyle::kInterleaved), "interleaved");
}

TEST(ConfigTest, DefaultMatchesClosedForm) {
  RopeConfig config;
  config.head_dim = 128;
  config.theta = 10000;
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_EQ(freqs.inv_freq.size(), 64u);
  EXPECT_EQ(freqs.attention_factor, 1.0);
  for (int i = 0; i < 64; ++i) {
    ExpectRelNear(freqs.inv_freq[i], static_cast<double>(powl(10000.0L, -(2.0L * i) / 128)),
                  "inv_freq[" + std::to_string(i) + "]");
  }
  EXPECT_EQ(freqs.inv_freq[0], 1.0);
  ExpectRelNear(freqs.inv_freq[32], 0.01, "theta^-1/2");
}

TEST(ConfigTest, PartialRotaryUsesRotaryDimAsD) {
  RopeConfig config;
  config.head_dim = 128;
  config.rotary_dim = 32;  // e.g. partial_rotary_factor 0.25
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_EQ(freqs.inv_freq.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    ExpectRelNear(freqs.inv_freq[i], std::pow(10000.0, -(2.0 * i) / 32),
                  "inv_freq[" + std::to_string(i) + "]");
  }
}

TEST(ConfigTest, LinearDividesByFactor) {
  RopeConfig config;
  config.scaling.type = ScalingType::kLinear;
  config.scaling.factor = 4;
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_EQ(freqs.inv_freq.size(), 64u);
  EXPECT_EQ(freqs.attention_factor, 1.0);
  for (int i = 0; i < 64; ++i) {
    ExpectRelNear(freqs.inv_freq[i], std::pow(10000.0, -(2.0 * i) / 128) / 4,
                  "inv_freq[" + std::to_string(i) + "]");
  }
}

TEST(ConfigTest, DynamicMatchesHuggingFace) {
  RopeConfig config;
  config.head_dim = 128;
  config.max_position = 16384;
  config.scaling.type = ScalingType::kDynamic;
  config.scaling.factor = 2;
  config.scaling.original_max_position_embeddings = 4096;
  const RopeFrequencies freqs = MustCompute(config);
  ExpectInvFreq(freqs, kDynamicInvFreq);
  EXPECT_EQ(freqs.attention_factor, 1.0);

  // Within the original context NTK leaves the base alone.
  config.max_position = 4096;
  const RopeFrequencies unscaled = MustCompute(config);
  config.scaling = RopeScaling{};
  EXPECT_EQ(unscaled.inv_freq, MustCompute(config).inv_freq);
}

TEST(ConfigTest, YarnMatchesHuggingFace) {
  const RopeFrequencies freqs = MustCompute(YarnConfig(4));
  ExpectInvFreq(freqs, kYarnInvFreq);
  ExpectRelNear(freqs.attention_factor, kYarnAttention, "attention_factor");

  RopeConfig no_truncate = YarnConfig(4);
  no_truncate.scaling.truncate = false;
  const RopeFrequencies untruncated = MustCompute(no_truncate);
  ExpectInvFreq(untruncated, kYarnNoTruncateInvFreq);
  ExpectRelNear(untruncated.attention_factor, kYarnAttention, "attention_factor");
}

TEST(ConfigTest, YarnOriginalDefaultsToMaxPosition) {
  RopeConfig config = YarnConfig(4);
  config.max_position = 4096;
  config.scaling.original_max_position_embeddings = 0;
  ExpectInvFreq(MustCompute(config), kYarnInvFreq);
}

TEST(ConfigTest, YarnDeepseekMscale) {
  RopeConfig config = YarnConfig(40);
  config.max_position = 163840;
  config.scaling.mscale = 0.707;
  config.scaling.mscale_all_dim = 0.707;
  const RopeFrequencies freqs = MustCompute(config);
  ExpectInvFreq(freqs, kYarnDeepseekInvFreq);
  ExpectRelNear(freqs.attention_factor, 1.0, "attention_factor");

  config.scaling.mscale = 1.0;
  ExpectRelNear(MustCompute(config).attention_factor, kYarnMscaleRatioAttention,
                "mscale ratio");
  // HF's `if mscale and mscale_all_dim`: a zero or missing one falls back to get_mscale.
  config.scaling.mscale_all_dim = 0.0;
  ExpectRelNear(MustCompute(config).attention_factor, 0.1 * std::log(40.0) + 1, "fallback");
  config.scaling.mscale_all_dim.reset();
  ExpectRelNear(MustCompute(config).attention_factor, 0.1 * std::log(40.0) + 1, "fallback");
}

TEST(ConfigTest, ExplicitAttentionFactorWins) {
  RopeConfig yarn = YarnConfig(4);
  yarn.scaling.attention_factor = 0.75;
  yarn.scaling.mscale = 1.0;
  yarn.scaling.mscale_all_dim = 0.5;
  const RopeFrequencies yarn_freqs = MustCompute(yarn);
  EXPECT_EQ(yarn_freqs.attention_factor, 0.75);
  ExpectInvFreq(yarn_freqs, kYarnInvFreq);

  RopeConfig longrope = LongropeConfig(16384);
  longrope.scaling.attention_factor = 1.25;
  EXPECT_EQ(MustCompute(longrope).attention_factor, 1.25);
}

TEST(ConfigTest, Llama3MatchesHuggingFace) {
  const RopeFrequencies freqs = MustCompute(Llama3Config());
  ExpectInvFreq(freqs, kLlama3InvFreq);
  EXPECT_EQ(freqs.attention_factor, 1.0);
}

TEST(ConfigTest, LongropePicksListByMaxPosition) {
  const RopeFrequencies long_freqs = MustCompute(LongropeConfig(16384));
  ExpectInvFreq(long_freqs, kLongropeLongInvFreq);
  ExpectRelNear(long_freqs.attention_factor, kLongropeAttention, "attention_factor");

  const RopeFrequencies short_freqs = MustCompute(LongropeConfig(4096));
  ExpectInvFreq(short_freqs, kLongropeShortInvFreq);
  // The attention factor follows scaling.factor, not the list in use.
  ExpectRelNear(short_freqs.attention_factor, kLongropeAttention, "attention_factor");

  RopeConfig unit_factor = LongropeConfig(16384);
  unit_factor.scaling.factor = 1;
  EXPECT_EQ(MustCompute(unit_factor).attention_factor, 1.0);
}

TEST(ConfigTest, GlmPreset) {
  const RopeConfig config = RopeConfig::Glm(128, DType::kBF16, 32768);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.rotary_dim, 64);
  EXPECT_EQ(config.style, RopeStyle::kInterleaved);
  EXPECT_EQ(config.dtype, DType::kBF16);
  EXPECT_EQ(config.max_position, 32768);
  EXPECT_EQ(config.theta, 10000.0);
  EXPECT_EQ(config.position_columns, 1);
  EXPECT_EQ(config.SegmentDim(), 64);
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_EQ(freqs.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    ExpectRelNear(freqs.inv_freq[i], std::pow(10000.0, -(2.0 * i) / 64),
                  "inv_freq[" + std::to_string(i) + "]");
  }
  // GLM-4's rope_ratio arrives as theta.
  EXPECT_EQ(RopeConfig::Glm(128, DType::kF16, 131072, 5e6).theta, 5e6);
}

TEST(ConfigTest, ChatGlmV1Preset) {
  const RopeConfig config = RopeConfig::ChatGlmV1(128, DType::kF16, 2048);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.EffectiveRotaryDim(), 128);
  EXPECT_EQ(config.position_columns, 2);
  EXPECT_EQ(config.style, RopeStyle::kNeox);
  EXPECT_EQ(config.dtype, DType::kF16);
  EXPECT_EQ(config.max_position, 2048);
  EXPECT_EQ(config.SegmentDim(), 64);
  // ChatGLM-6B builds RotaryEmbedding(head_dim / 2): d is the half width.
  const RopeFrequencies freqs = MustCompute(config);
  ASSERT_EQ(freqs.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    ExpectRelNear(freqs.inv_freq[i], std::pow(10000.0, -(2.0 * i) / 64),
                  "inv_freq[" + std::to_string(i) + "]");
  }
}

TEST(ConfigTest, LongropeListChosenExplicitly) {
  const RopeConfig config = LongropeConfig(16384);  // max_position picks the long list
  auto short_freqs = ComputeFrequencies(config, LongropeFactors::kShort);
  ASSERT_TRUE(short_freqs.ok()) << short_freqs.status();
  ExpectInvFreq(*short_freqs, kLongropeShortInvFreq);
  ExpectRelNear(short_freqs->attention_factor, kLongropeAttention, "attention_factor");
  auto long_freqs = ComputeFrequencies(LongropeConfig(4096), LongropeFactors::kLong);
  ASSERT_TRUE(long_freqs.ok()) << long_freqs.status();
  ExpectInvFreq(*long_freqs, kLongropeLongInvFreq);
  auto by_max = ComputeFrequencies(config, LongropeFactors::kForMaxPosition);
  ASSERT_TRUE(by_max.ok());
  ExpectInvFreq(*by_max, kLongropeLongInvFreq);
  // Other variants ignore the choice; a bad config is still rejected.
  RopeConfig plain;
  EXPECT_EQ(ComputeFrequencies(plain, LongropeFactors::kLong)->inv_freq,
            ComputeFrequencies(plain)->inv_freq);
  RopeConfig bad = config;
  bad.scaling.long_factor.pop_back();
  EXPECT_TRUE(absl::IsInvalidArgument(ComputeFrequencies(bad, LongropeFactors::kShort).status()));
}

TEST(ConfigTest, MropeColumnsFollowHuggingFace) {
  RopeConfig config;  // head_dim 128: 64 frequencies
  config.position_columns = 3;
  config.mrope_section = {16, 24, 24};
  ASSERT_TRUE(ValidateConfig(config).ok()) << ValidateConfig(config);
  EXPECT_EQ(config.Segments(), 1);
  EXPECT_EQ(config.SegmentDim(), 128);
  // HF apply_multimodal_rotary_pos_emb: cos.split(section * 2), chunk i uses column i % 3;
  // frequency j sits in chunk (j < 16 ? 0 : j < 40 ? 1 : 2) of the first half.
  std::vector<int> columns;
  for (int c = 0; c < 3; ++c) columns.insert(columns.end(), config.mrope_section[c], c);
  for (int j = 0; j < 64; ++j) EXPECT_EQ(config.MropeColumn(j), columns[j]) << j;

  config.mrope_interleaved = true;
  config.mrope_section = {24, 20, 20};
  ASSERT_TRUE(ValidateConfig(config).ok());
  // HF apply_interleaved_mrope: freqs_t[..., offset:3*s[dim]:3] = freqs[dim] for dim 1, 2.
  std::vector<int> interleaved(64, 0);
  for (int dim = 1; dim <= 2; ++dim) {
    for (int j = dim; j < 3 * config.mrope_section[dim]; j += 3) interleaved[j] = dim;
  }
  for (int j = 0; j < 64; ++j) EXPECT_EQ(config.MropeColumn(j), interleaved[j]) << j;

  // Partial rotary (Qwen3-Next style): sections sum to rotary_dim / 2.
  RopeConfig partial;
  partial.head_dim = 256;
  partial.rotary_dim = 64;
  partial.position_columns = 3;
  partial.mrope_section = {11, 11, 10};
  partial.mrope_interleaved = true;
  EXPECT_TRUE(ValidateConfig(partial).ok()) << ValidateConfig(partial);
  EXPECT_EQ(RopeConfig{}.MropeColumn(5), 0);
}

}  // namespace
}  // namespace rope_jit
