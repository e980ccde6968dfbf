#include "rope/tensor_checks.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rope_jit {
namespace {

std::string DescribeDims(absl::Span<const StridedDim> dims) {
  std::string out;
  for (const StridedDim& dim : dims) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", dim.stride_name, " = ", dim.stride,
                    " over ", dim.extent);
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> LargestElementOffset(absl::string_view view_name,
                                             absl::Span<const StridedDim> dims,
                                             int64_t contiguous) {
  if (contiguous < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(view_name, ": contiguous extent ", contiguous, " is negative"));
  }
  bool empty = contiguous == 0;
  for (const StridedDim& dim : dims) {
    if (dim.stride < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          dim.stride_name, " = ", dim.stride, " is negative; negative strides are not supported"));
    }
    if (dim.extent < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(view_name, ": the extent under ", dim.stride_name, " is ", dim.extent));
    }
    empty = empty || dim.extent == 0;
  }
  if (empty) return -1;
  int64_t offset = contiguous - 1;
  for (const StridedDim& dim : dims) {
    int64_t step = 0;
    if (__builtin_mul_overflow(dim.extent - 1, dim.stride, &step)) {
      return absl::InvalidArgumentError(absl::StrCat(dim.stride_name, " = ", dim.stride, ": (",
                                                     dim.extent, " - 1) * stride overflows 64 bits"));
    }
    if (__builtin_add_overflow(offset, step, &offset)) {
      return absl::InvalidArgumentError(
          absl::StrCat(DescribeDims(dims), ", contiguous ", contiguous, ": ", view_name,
                       "'s largest element offset overflows 64 bits"));
    }
  }
  return offset;
}

absl::Status CheckDeviceSpan(absl::string_view data_name, const void* data,
                             int64_t largest_element_offset, int element_size) {
  if (data == nullptr) return absl::InvalidArgumentError(absl::StrCat(data_name, " is null"));
  const uintptr_t address = reinterpret_cast<uintptr_t>(data);
  if (element_size <= 0 || address % element_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(data_name, " = 0x", absl::Hex(address),
                                                   " is not aligned to its element size, ",
                                                   element_size, " bytes"));
  }
  if (largest_element_offset < 0) return absl::OkStatus();
  int64_t last_byte = 0;
  if (__builtin_mul_overflow(largest_element_offset, element_size, &last_byte) ||
      __builtin_add_overflow(last_byte, element_size - 1, &last_byte)) {
    return absl::InvalidArgumentError(
        absl::StrCat(data_name, ": the last element, ", largest_element_offset,
                     " elements in, is past 2^63 bytes; a kernel cannot index it"));
  }
  uintptr_t end = 0;
  if (__builtin_add_overflow(address, static_cast<uintptr_t>(last_byte), &end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        data_name, " = 0x", absl::Hex(address), ": its last byte, ", last_byte,
        " bytes in, wraps the address space"));
  }
  return absl::OkStatus();
}

}  // namespace rope_jit
