// A small interpreter of the Jinja subset that model chat templates are written in
// (tokenizer.chat_template in GGUF files, chat_template in Hugging Face tokenizer_config.json).
//
// It follows Jinja2 as Hugging Face runs chat templates: trim_blocks and lstrip_blocks on,
// `{%-` / `-%}` / `{{-` / `-}}` whitespace control, Python semantics for values (truthiness, `+`
// on strings and lists, `in`, slices, string methods), and the default (non-strict) undefined:
// a missing variable or key renders as nothing and is false, but taking an item or attribute of
// it is an error.
//
// What it understands:
//   statements  if / elif / else / endif, for ... in ... [if ...] / else / endfor with loop.index,
//               index0, revindex, revindex0, first, last, length, previtem, nextitem; break,
//               continue; set (a name, ns.attr, or a block up to endset); macro / endmacro and
//               calls with positional and keyword arguments; generation / endgeneration; comments
//   expressions literals (strings, integers, floats, true/false/none in either case, lists,
//               tuples, dicts), names, `.attr`, `[index]`, slices `[a:b:c]`, calls, `|filter`,
//               `is [not] test`, not / and / or, `x if c else y`, == != < <= > >=, in / not in,
//               + - * / // % **, `~`, unary - and +
//   filters     abs capitalize count default/d first float indent int items join last length
//               list lower map max min reject rejectattr replace reverse round safe select
//               selectattr sort string sum title tojson trim unique upper
//   tests       boolean callable defined divisibleby eq/equalto/== even false float ge/>= gt/> in
//               integer iterable le/<= lower lt/< mapping ne/!= none number odd sameas sequence
//               string true undefined upper
//   methods     strings: strip lstrip rstrip split startswith endswith upper lower title
//               capitalize replace find count join; dicts: items keys values get
//   globals     raise_exception(message), namespace(...), range(...), dict(...)
// strftime_now is deliberately absent, so templates fall back to their fixed date: a rendering
// is a pure function of the template and its variables.
//
// Anything else (an unknown statement, filter, test or method, a syntax error) is an error whose
// message names the byte offset, line and column in the template.
//
// Templates are hostile input (they come with model files): parsing and rendering are bounded
// (nesting depth, steps, output size) and fail with RESOURCE_EXHAUSTED beyond the limits.
//
// Thread-safety: Values are not synchronized; a Template is immutable after Parse and Render may
// be called from several threads at once with distinct variables.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace sextant::jinja {

class Value;
struct Dict;

// A template value. Lists, dicts and namespaces are shared by reference, as in Python.
class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kMacro,
  };

  Value() = default;                                                     // undefined
  Value(bool b) : kind_(Kind::kBool), int_(b ? 1 : 0) {}                 // NOLINT
  Value(int i) : kind_(Kind::kInt), int_(i) {}                           // NOLINT
  Value(int64_t i) : kind_(Kind::kInt), int_(i) {}                       // NOLINT
  Value(double f) : kind_(Kind::kFloat), float_(f) {}                    // NOLINT
  Value(std::string s) : kind_(Kind::kString), string_(std::move(s)) {}  // NOLINT
  Value(std::string_view s) : kind_(Kind::kString), string_(s) {}        // NOLINT
  Value(const char* s) : kind_(Kind::kString), string_(s) {}             // NOLINT
  Value(std::vector<Value> list);                                        // NOLINT
  Value(Dict dict);                                                      // NOLINT
  static Value None();
  static Value Namespace(Dict attributes);
  static Value Macro(const void* definition);  // used by the interpreter

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }

  // REQUIRES: the kind that each accessor names.
  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  double as_float() const { return kind_ == Kind::kInt ? static_cast<double>(int_) : float_; }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }  // dicts and namespaces
  Dict& mutable_dict() const { return *dict_; }   // namespaces: `set ns.x = ...`
  const void* as_macro() const { return macro_; }

  // Python truthiness.
  bool Truthy() const;
  // The text `{{ value }}` renders: "" for undefined, Python's str() otherwise
  // (None, True, 1.5, ['a', 1], {'k': 'v'}).
  std::string Str() const;
  // Python's repr() (strings quoted).
  std::string Repr() const;

 private:
  Kind kind_ = Kind::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<std::vector<Value>> list_;
  std::shared_ptr<Dict> dict_;
  const void* macro_ = nullptr;
};

// An insertion-ordered map with string keys (Python's dict as templates use it).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;

  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(std::string key, Value value);  // replaces an existing key in place
};

// Bounds of one rendering.
struct RenderLimits {
  size_t max_output_bytes = 16u << 20;
  uint64_t max_steps = 10'000'000;  // statements and expressions evaluated
  int max_depth = 256;              // nested macro calls and expressions
};

class Template {
 public:
  // Parses `source`. INVALID_ARGUMENT naming the offset, line and column for a syntax error or
  // an unsupported statement; RESOURCE_EXHAUSTED for nesting deeper than the limit.
  static Result<Template> Parse(std::string_view source);

  // Renders with `variables` as the template's globals. INVALID_ARGUMENT naming the offset for an
  // error at run time (a type error, an unknown filter, raise_exception's message);
  // RESOURCE_EXHAUSTED past `limits`. Never partial: the text is returned whole or not at all.
  Result<std::string> Render(const Dict& variables, const RenderLimits& limits = {}) const;

  struct Program;  // the parsed template; defined in jinja.cpp

 private:
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace sextant::jinja
