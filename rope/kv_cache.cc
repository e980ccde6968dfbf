#include "rope/kv_cache.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace rope_jit {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

bool KnownLayout(KvLayout layout) { return layout == KvLayout::kNHD || layout == KvLayout::kHND; }

bool KnownDType(KvDType dtype) {
  return dtype == KvDType::kSame || dtype == KvDType::kFp8E4M3 || dtype == KvDType::kFp8E5M2;
}

}  // namespace

const char* KvLayoutName(KvLayout layout) {
  switch (layout) {
    case KvLayout::kNHD: return "NHD";
    case KvLayout::kHND: return "HND";
  }
  return "?";
}

const char* KvDTypeName(KvDType dtype) {
  switch (dtype) {
    case KvDType::kSame: return "same";
    case KvDType::kFp8E4M3: return "fp8_e4m3";
    case KvDType::kFp8E5M2: return "fp8_e5m2";
  }
  return "?";
}

int KvElementSize(KvDType dtype, DType rope_dtype) {
  return dtype == KvDType::kSame ? DTypeSize(rope_dtype) : 1;
}

KvCacheStrides CacheStrides(const KvCacheView& cache) {
  KvCacheStrides strides;
  strides.block = cache.block_size * cache.kv_heads * cache.head_dim;
  if (cache.layout == KvLayout::kNHD) {
    strides.slot = cache.kv_heads * cache.head_dim;
    strides.head = cache.head_dim;
  } else {
    strides.slot = cache.head_dim;
    strides.head = cache.block_size * cache.head_dim;
  }
  return strides;
}

absl::StatusOr<int64_t> ValidateKvCacheView(const KvCacheView& cache, const RopeConfig& config) {
  if (cache.k == nullptr) return Invalid("cache.k is null");
  if (cache.v == nullptr) return Invalid("cache.v is null");
  if (!KnownLayout(cache.layout)) {
    return Invalid(absl::StrCat("cache.layout = ", static_cast<int>(cache.layout), " is not NHD or HND"));
  }
  if (!KnownDType(cache.dtype)) {
    return Invalid(absl::StrCat("cache.dtype = ", static_cast<int>(cache.dtype),
                                " is not kSame, kFp8E4M3 or kFp8E5M2"));
  }
  if (cache.num_blocks < 1) return Invalid(absl::StrCat("cache.num_blocks = ", cache.num_blocks, " is < 1"));
  if (cache.block_size < 1) return Invalid(absl::StrCat("cache.block_size = ", cache.block_size, " is < 1"));
  if (cache.kv_heads < 1 || cache.kv_heads > (1 << 20)) {
    return Invalid(absl::StrCat("cache.kv_heads = ", cache.kv_heads, " is outside [1, 2^20]"));
  }
  if (cache.head_dim != config.head_dim) {
    return Invalid(absl::StrCat("cache.head_dim = ", cache.head_dim, " but the Rope was created for ",
                                config.head_dim));
  }
  const bool fp8 = cache.dtype != KvDType::kSame;
  if (fp8 && (cache.k_scale == nullptr || cache.v_scale == nullptr)) {
    return Invalid(absl::StrCat("cache.dtype = ", KvDTypeName(cache.dtype), " needs cache.k_scale and ",
                                "cache.v_scale (device floats); ",
                                cache.k_scale == nullptr ? "cache.k_scale" : "cache.v_scale", " is null"));
  }
  if (!fp8 && (cache.k_scale != nullptr || cache.v_scale != nullptr)) {
    return Invalid("cache.k_scale / cache.v_scale are given but cache.dtype = same: scales are for FP8 "
                   "caches only");
  }
  // Every extent the kernel forms lies below the array's size; all of it must fit int64
  // and the address space.
  int64_t elements = 0, bytes = 0;
  if (__builtin_mul_overflow(cache.num_blocks, cache.block_size, &elements) ||
      __builtin_mul_overflow(elements, cache.kv_heads, &elements) ||
      __builtin_mul_overflow(elements, cache.head_dim, &elements) ||
      __builtin_mul_overflow(elements, int64_t{KvElementSize(cache.dtype, config.dtype)}, &bytes)) {
    return Invalid(absl::StrCat("cache extent overflows: num_blocks ", cache.num_blocks, " x block_size ",
                                cache.block_size, " x kv_heads ", cache.kv_heads, " x head_dim ",
                                cache.head_dim, " elements"));
  }
  const uintptr_t k = reinterpret_cast<uintptr_t>(cache.k), v = reinterpret_cast<uintptr_t>(cache.v);
  uintptr_t k_end = 0, v_end = 0;
  if (__builtin_add_overflow(k, static_cast<uintptr_t>(bytes), &k_end) ||
      __builtin_add_overflow(v, static_cast<uintptr_t>(bytes), &v_end)) {
    return Invalid(absl::StrCat("cache of ", bytes, " bytes at cache.k or cache.v wraps the address space"));
  }
  if (k < v_end && v < k_end) {
    return Invalid(absl::StrCat("cache.k and cache.v overlap: each is ", bytes, " bytes, ",
                                k > v ? k - v : v - k, " bytes apart"));
  }
  return bytes;
}

}  // namespace rope_jit
