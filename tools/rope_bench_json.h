// A small streaming JSON writer for rope_bench's report: objects, arrays, strings,
// numbers and booleans, commas and escaping handled, two-space indentation.
//
//   JsonWriter json;
//   json.BeginObject();
//   json.Key("card").String("NVIDIA H100 80GB HBM3");
//   json.Key("ratio").Number(1.03);
//   json.EndObject();
//   std::string text = json.str();
//
// Non-finite numbers (a measurement that did not happen) are written as null.
#ifndef ROPE_JIT_TOOLS_ROPE_BENCH_JSON_H_
#define ROPE_JIT_TOOLS_ROPE_BENCH_JSON_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace rope_jit {

class JsonWriter {
 public:
  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  JsonWriter& Key(absl::string_view key) {
    Separate();
    Quote(key);
    out_ += ": ";
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(absl::string_view value) {
    Separate();
    Quote(value);
    return *this;
  }
  JsonWriter& Number(double value) {
    Separate();
    if (std::isfinite(value)) {
      out_ += absl::StrFormat("%.6g", value);
    } else {
      out_ += "null";
    }
    return *this;
  }
  JsonWriter& Int(int64_t value) {
    Separate();
    absl::StrAppend(&out_, value);
    return *this;
  }
  JsonWriter& Bool(bool value) {
    Separate();
    out_ += value ? "true" : "false";
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    out_ += "null";
    return *this;
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& Open(char bracket) {
    Separate();
    out_ += bracket;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& Close(char bracket) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) Newline();
    out_ += bracket;
    if (first_.empty()) out_ += '\n';
    return *this;
  }
  // Before any value or key: a comma unless first in its container, then a new line;
  // a value right after its key stays on the key's line.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    Newline();
  }
  void Newline() {
    out_ += '\n';
    out_.append(2 * first_.size(), ' ');
  }
  void Quote(absl::string_view text) {
    out_ += '"';
    for (unsigned char c : text) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (c < 0x20) {
            out_ += absl::StrFormat("\\u%04x", c);
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_TOOLS_ROPE_BENCH_JSON_H_
