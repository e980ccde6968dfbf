// The RoPE shapes an AOT build bakes, written the way a BUILD file lists them.
//
//   ASSIGN_OR_RETURN(RopeConfig config, ParseAotConfig("dtype=bf16,style=neox,head_dim=128"));
//   ASSIGN_OR_RETURN(KernelSpec spec, RopeKernelSpec(config, RopeKernel::kRope, "gfx90a"));
//
// Only what RopeKernelSpec bakes into a code object can be named: dtype (f32, f16, bf16, or
// an alias ParseDType in rope/config.h accepts), style (neox, interleaved, or an alias
// ParseStyle accepts), head_dim, rotary_dim (default head_dim) and
// position_columns (default 1). theta, scaling and max_position only change the uploaded
// frequency table, so one code object serves every value of them.
#ifndef ROPE_JIT_AOT_AOT_CONFIG_H_
#define ROPE_JIT_AOT_AOT_CONFIG_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rope/config.h"

namespace rope_jit {

// InvalidArgument naming the offending field: unknown keys, repeated keys, missing dtype,
// style or head_dim, bad values, and configs ValidateConfig rejects.
absl::StatusOr<RopeConfig> ParseAotConfig(absl::string_view text);

}  // namespace rope_jit

#endif  // ROPE_JIT_AOT_AOT_CONFIG_H_
