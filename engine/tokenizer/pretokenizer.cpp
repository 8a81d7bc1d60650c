// The regex engine of pretokenizer.h: a recursive-descent parser to a small AST, compiled to a
// backtracking program (class / split / jump / assert / lookahead / match), run with an explicit
// stack so that the first match found is the leftmost-first one.
#include "engine/tokenizer/pretokenizer.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "engine/tokenizer/unicode.h"

namespace sextant::unicode {

CodePoints CodePoints::Decode(std::string_view text) {
  CodePoints c;
  c.cp.reserve(text.size());
  c.offset.reserve(text.size() + 1);
  for (size_t off = 0; off < text.size();) {
    const Utf8Char ch = DecodeUtf8(text.substr(off));
    const bool valid = ch.kind == Utf8Char::kValid;
    c.cp.push_back(valid ? ch.code_point : kInvalidCodePoint);
    c.offset.push_back(static_cast<uint32_t>(off));
    off += valid ? ch.length : 1;
  }
  c.offset.push_back(static_cast<uint32_t>(text.size()));
  return c;
}

// A character class: the union of its items, negated when `negated`.
struct SplitPattern::ClassSet {
  bool negated = false;
  bool any_but_newline = false;  // '.'
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint32_t category_mask = 0;      // \p{..} items
  uint32_t not_category_mask = 0;  // \P{..} items: matches a category outside the mask
  bool has_not_category = false;
  bool space = false;      // \s
  bool not_space = false;  // \S

  // A byte that is not UTF-8 is in no category and not whitespace: only the negative items (\S,
  // \P{..}) and negated classes match it.
  bool Matches(uint32_t cp) const {
    bool in = false;
    if (cp == CodePoints::kInvalidCodePoint) {
      in = not_space || has_not_category;
    } else {
      if (any_but_newline && cp != '\n') in = true;
      for (const auto& [lo, hi] : ranges) {
        if (cp >= lo && cp <= hi) {
          in = true;
          break;
        }
      }
      if (!in && (category_mask | has_not_category | space | not_space)) {
        const uint32_t bit = 1u << Category(cp);
        const bool ws = IsWhitespace(cp);
        in = (category_mask & bit) != 0 || (has_not_category && (not_category_mask & bit) == 0) ||
             (space && ws) || (not_space && !ws);
      }
    }
    return in != negated;
  }
};

struct SplitPattern::Inst {
  enum Op : uint8_t { kClass, kSplit, kJump, kAssertStart, kAssertEnd, kLook, kMatch };
  Op op;
  bool negative = false;  // kLook: (?!...)
  uint32_t a = 0;         // kClass: class index; kSplit/kJump: first target; kLook: sub-program
  uint32_t b = 0;         // kSplit: second target
};

namespace {

struct Node {
  enum Kind { kEmpty, kClass, kConcat, kAlt, kRepeat, kLook, kStart, kEnd } kind = kEmpty;
  uint32_t cls = 0;
  int min = 0, max = 0;  // kRepeat; max -1: unbounded
  bool negative = false;
  std::vector<std::unique_ptr<Node>> kids;

  bool Nullable() const {
    switch (kind) {
      case kEmpty:
      case kLook:
      case kStart:
      case kEnd:
        return true;
      case kClass:
        return false;
      case kConcat:
        return std::all_of(kids.begin(), kids.end(), [](const auto& k) { return k->Nullable(); });
      case kAlt:
        return std::any_of(kids.begin(), kids.end(), [](const auto& k) { return k->Nullable(); });
      case kRepeat:
        return min == 0 || kids[0]->Nullable();
    }
    return true;
  }
};

// The general categories a \p{NAME} names, as a mask; 0 for an unknown name.
uint32_t CategoryMask(std::string_view name) {
  struct Entry {
    std::string_view name;
    uint32_t mask;
  };
  static constexpr Entry kTable[] = {
      {"L", kMaskL},     {"Letter", kMaskL}, {"M", kMaskM},     {"Mark", kMaskM},
      {"N", kMaskN},     {"Number", kMaskN}, {"P", kMaskP},     {"Punctuation", kMaskP},
      {"S", kMaskS},     {"Symbol", kMaskS}, {"Z", kMaskZ},     {"Separator", kMaskZ},
      {"C", kMaskC},     {"Other", kMaskC},  {"Lu", 1u << kLu}, {"Ll", 1u << kLl},
      {"Lt", 1u << kLt}, {"Lm", 1u << kLm},  {"Lo", 1u << kLo}, {"Mn", 1u << kMn},
      {"Mc", 1u << kMc}, {"Me", 1u << kMe},  {"Nd", 1u << kNd}, {"Nl", 1u << kNl},
      {"No", 1u << kNo}, {"Pc", 1u << kPc},  {"Pd", 1u << kPd}, {"Ps", 1u << kPs},
      {"Pe", 1u << kPe}, {"Pi", 1u << kPi},  {"Pf", 1u << kPf}, {"Po", 1u << kPo},
      {"Sm", 1u << kSm}, {"Sc", 1u << kSc},  {"Sk", 1u << kSk}, {"So", 1u << kSo},
      {"Zs", 1u << kZs}, {"Zl", 1u << kZl},  {"Zp", 1u << kZp}, {"Cc", 1u << kCc},
      {"Cf", 1u << kCf}, {"Co", 1u << kCo},  {"Cn", 1u << kCn},
  };
  for (const Entry& e : kTable) {
    if (e.name == name) return e.mask;
  }
  return 0;
}

class Parser {
 public:
  Parser(std::string_view pattern, std::vector<SplitPattern::ClassSet>& classes)
      : classes_(classes) {
    const CodePoints c = CodePoints::Decode(pattern);
    cps_ = c.cp;
    offsets_ = c.offset;
  }

  Result<std::unique_ptr<Node>> Parse() {
    for (uint32_t c : cps_) {
      if (c == CodePoints::kInvalidCodePoint) return Error("the pattern is not valid UTF-8");
    }
    SEXTANT_ASSIGN_OR_RETURN(auto node, ParseAlt(false));
    if (pos_ < cps_.size()) return Error("unbalanced ')'");
    return node;
  }

 private:
  Status Error(const std::string& what) const {
    const size_t at = pos_ < offsets_.size() ? offsets_[pos_] : offsets_.back();
    return Status::InvalidArgument("regex: " + what + " at byte " + std::to_string(at));
  }
  bool AtEnd() const { return pos_ >= cps_.size(); }
  uint32_t Peek() const { return AtEnd() ? 0 : cps_[pos_]; }

  Result<std::unique_ptr<Node>> ParseAlt(bool icase) {
    auto alt = std::make_unique<Node>();
    alt->kind = Node::kAlt;
    while (true) {
      SEXTANT_ASSIGN_OR_RETURN(auto seq, ParseConcat(icase));
      alt->kids.push_back(std::move(seq));
      if (!AtEnd() && Peek() == '|') {
        ++pos_;
        continue;
      }
      break;
    }
    if (alt->kids.size() == 1) return std::move(alt->kids[0]);
    return alt;
  }

  Result<std::unique_ptr<Node>> ParseConcat(bool icase) {
    auto seq = std::make_unique<Node>();
    seq->kind = Node::kConcat;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      SEXTANT_ASSIGN_OR_RETURN(auto atom, ParseAtom(icase));
      SEXTANT_ASSIGN_OR_RETURN(atom, ParseQuantifier(std::move(atom)));
      seq->kids.push_back(std::move(atom));
    }
    return seq;
  }

  Result<int> ParseNumber() {
    if (AtEnd() || Peek() < '0' || Peek() > '9') return Error("expected a number");
    int64_t v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + (Peek() - '0');
      if (v > 1000) return Error("repeat count above 1000");
      ++pos_;
    }
    return static_cast<int>(v);
  }

  Result<std::unique_ptr<Node>> ParseQuantifier(std::unique_ptr<Node> atom) {
    while (!AtEnd()) {
      int min = 0, max = 0;
      const uint32_t c = Peek();
      if (c == '?') {
        min = 0, max = 1;
        ++pos_;
      } else if (c == '*') {
        min = 0, max = -1;
        ++pos_;
      } else if (c == '+') {
        min = 1, max = -1;
        ++pos_;
      } else if (c == '{') {
        ++pos_;
        SEXTANT_ASSIGN_OR_RETURN(min, ParseNumber());
        max = min;
        if (Peek() == ',') {
          ++pos_;
          if (Peek() == '}') {
            max = -1;
          } else {
            SEXTANT_ASSIGN_OR_RETURN(max, ParseNumber());
          }
        }
        if (Peek() != '}') return Error("expected '}'");
        ++pos_;
        if (max >= 0 && max < min) return Error("repeat {n,m} with m < n");
      } else {
        break;
      }
      if (!AtEnd() && (Peek() == '?' || Peek() == '+')) {
        return Error("lazy and possessive quantifiers are not supported");
      }
      if (max < 0 && atom->Nullable())
        return Error("unbounded repeat of a pattern that can be empty");
      auto rep = std::make_unique<Node>();
      rep->kind = Node::kRepeat;
      rep->min = min;
      rep->max = max;
      rep->kids.push_back(std::move(atom));
      atom = std::move(rep);
    }
    return atom;
  }

  std::unique_ptr<Node> ClassNode(SplitPattern::ClassSet set) {
    classes_.push_back(std::move(set));
    auto n = std::make_unique<Node>();
    n->kind = Node::kClass;
    n->cls = static_cast<uint32_t>(classes_.size() - 1);
    return n;
  }

  static void AddRange(SplitPattern::ClassSet& set, uint32_t lo, uint32_t hi, bool icase) {
    set.ranges.emplace_back(lo, hi);
    if (!icase) return;
    // ASCII letters of the range in the other case.
    const uint32_t ulo = std::max<uint32_t>(lo, 'A'), uhi = std::min<uint32_t>(hi, 'Z');
    if (ulo <= uhi) set.ranges.emplace_back(ulo + 32, uhi + 32);
    const uint32_t llo = std::max<uint32_t>(lo, 'a'), lhi = std::min<uint32_t>(hi, 'z');
    if (llo <= lhi) set.ranges.emplace_back(llo - 32, lhi - 32);
  }

  // After a backslash: fills `set` for a class escape (\s \S \p \P) and returns true, or sets
  // `literal` for a character escape and returns false.
  Result<bool> ParseEscape(SplitPattern::ClassSet& set, uint32_t& literal) {
    if (AtEnd()) return Error("pattern ends with '\\'");
    const uint32_t c = cps_[pos_++];
    switch (c) {
      case 's':
        set.space = true;
        return true;
      case 'S':
        set.not_space = true;
        return true;
      case 'p':
      case 'P': {
        std::string name;
        if (Peek() == '{') {
          ++pos_;
          while (!AtEnd() && Peek() != '}') name.push_back(static_cast<char>(cps_[pos_++] & 0x7F));
          if (AtEnd()) return Error("unterminated \\p{");
          ++pos_;
        } else if (!AtEnd()) {
          name.push_back(static_cast<char>(cps_[pos_++] & 0x7F));
        }
        const uint32_t mask = CategoryMask(name);
        if (mask == 0) return Error("unknown Unicode category '" + name + "'");
        if (c == 'p') {
          set.category_mask |= mask;
        } else {
          set.not_category_mask |= mask;
          set.has_not_category = true;
        }
        return true;
      }
      case 'r':
        literal = '\r';
        return false;
      case 'n':
        literal = '\n';
        return false;
      case 't':
        literal = '\t';
        return false;
      case 'f':
        literal = '\f';
        return false;
      case 'v':
        literal = '\v';
        return false;
      default:
        if (c < 0x80 &&
            ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
          --pos_;
          return Error(std::string("unsupported escape '\\") + static_cast<char>(c) + "'");
        }
        literal = c;  // escaped punctuation or any non-ASCII character stands for itself
        return false;
    }
  }

  Result<std::unique_ptr<Node>> ParseClass(bool icase) {
    SplitPattern::ClassSet set;
    if (Peek() == '^') {
      set.negated = true;
      ++pos_;
    }
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("unterminated '['");
      uint32_t c = cps_[pos_];
      if (c == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      ++pos_;
      uint32_t lo = c;
      if (c == '\\') {
        SEXTANT_ASSIGN_OR_RETURN(const bool is_class, ParseEscape(set, lo));
        if (is_class) continue;
      } else if (c == '[') {
        return Error("nested classes are not supported");
      }
      if (pos_ + 1 < cps_.size() && cps_[pos_] == '-' && cps_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi = cps_[pos_++];
        if (hi == '\\') {
          SplitPattern::ClassSet dummy;
          SEXTANT_ASSIGN_OR_RETURN(const bool is_class, ParseEscape(dummy, hi));
          if (is_class) return Error("a class escape cannot end a range");
        }
        if (hi < lo) return Error("range out of order");
        AddRange(set, lo, hi, icase);
      } else {
        AddRange(set, lo, lo, icase);
      }
    }
    return ClassNode(std::move(set));
  }

  Result<std::unique_ptr<Node>> ParseAtom(bool icase) {
    const uint32_t c = cps_[pos_++];
    switch (c) {
      case '(': {
        bool look = false, negative = false, inner_icase = icase;
        if (Peek() == '?') {
          ++pos_;
          const uint32_t k = AtEnd() ? 0 : cps_[pos_++];
          if (k == ':') {
          } else if (k == '=' || k == '!') {
            look = true;
            negative = k == '!';
          } else if (k == 'i' && Peek() == ':') {
            ++pos_;
            inner_icase = true;
          } else {
            --pos_;
            return Error("unsupported group kind");
          }
        }
        SEXTANT_ASSIGN_OR_RETURN(auto inner, ParseAlt(inner_icase));
        if (AtEnd() || Peek() != ')') return Error("missing ')'");
        ++pos_;
        if (!look) return inner;
        auto n = std::make_unique<Node>();
        n->kind = Node::kLook;
        n->negative = negative;
        n->kids.push_back(std::move(inner));
        return n;
      }
      case '[':
        return ParseClass(icase);
      case '.': {
        SplitPattern::ClassSet set;
        set.any_but_newline = true;
        return ClassNode(std::move(set));
      }
      case '^':
      case '$': {
        auto n = std::make_unique<Node>();
        n->kind = c == '^' ? Node::kStart : Node::kEnd;
        return n;
      }
      case ')':
      case '|':
      case '*':
      case '+':
      case '?':
      case '{':
        --pos_;
        return Error("unexpected '" + std::string(1, static_cast<char>(c)) + "'");
      case '\\': {
        SplitPattern::ClassSet set;
        uint32_t literal = 0;
        SEXTANT_ASSIGN_OR_RETURN(const bool is_class, ParseEscape(set, literal));
        if (!is_class) AddRange(set, literal, literal, icase);
        return ClassNode(std::move(set));
      }
      default: {
        SplitPattern::ClassSet set;
        AddRange(set, c, c, icase);
        return ClassNode(std::move(set));
      }
    }
  }

  std::vector<SplitPattern::ClassSet>& classes_;
  std::vector<uint32_t> cps_;
  std::vector<uint32_t> offsets_;
  size_t pos_ = 0;
};

using Inst = SplitPattern::Inst;

// Appends the program of `n` to `prog`; sub-programs of lookaheads go to `subs` (compiled after
// the main program, each ending in kMatch).
void Emit(const Node& n, std::vector<Inst>& prog,
          std::vector<std::pair<size_t, const Node*>>& subs) {
  switch (n.kind) {
    case Node::kEmpty:
      return;
    case Node::kClass:
      prog.push_back({Inst::kClass, false, n.cls, 0});
      return;
    case Node::kStart:
      prog.push_back({Inst::kAssertStart, false, 0, 0});
      return;
    case Node::kEnd:
      prog.push_back({Inst::kAssertEnd, false, 0, 0});
      return;
    case Node::kLook:
      subs.emplace_back(prog.size(), n.kids[0].get());
      prog.push_back({Inst::kLook, n.negative, 0, 0});
      return;
    case Node::kConcat:
      for (const auto& k : n.kids) Emit(*k, prog, subs);
      return;
    case Node::kAlt: {
      // split L1, next; L1: kid0; jmp end; next: split L2, next2; ... last kid; end:
      std::vector<size_t> jumps;
      for (size_t i = 0; i < n.kids.size(); ++i) {
        if (i + 1 < n.kids.size()) {
          const size_t split = prog.size();
          prog.push_back({Inst::kSplit, false, static_cast<uint32_t>(split + 1), 0});
          Emit(*n.kids[i], prog, subs);
          jumps.push_back(prog.size());
          prog.push_back({Inst::kJump, false, 0, 0});
          prog[split].b = static_cast<uint32_t>(prog.size());
        } else {
          Emit(*n.kids[i], prog, subs);
        }
      }
      for (size_t j : jumps) prog[j].a = static_cast<uint32_t>(prog.size());
      return;
    }
    case Node::kRepeat: {
      const Node& body = *n.kids[0];
      for (int i = 0; i < n.min; ++i) Emit(body, prog, subs);
      if (n.max < 0) {
        const size_t split = prog.size();
        prog.push_back({Inst::kSplit, false, static_cast<uint32_t>(split + 1), 0});
        Emit(body, prog, subs);
        prog.push_back({Inst::kJump, false, static_cast<uint32_t>(split), 0});
        prog[split].b = static_cast<uint32_t>(prog.size());
      } else {
        std::vector<size_t> splits;
        for (int i = n.min; i < n.max; ++i) {
          splits.push_back(prog.size());
          prog.push_back({Inst::kSplit, false, static_cast<uint32_t>(prog.size() + 1), 0});
          Emit(body, prog, subs);
        }
        for (size_t s : splits) prog[s].b = static_cast<uint32_t>(prog.size());
      }
      return;
    }
  }
}

}  // namespace

SplitPattern::SplitPattern() = default;
SplitPattern::~SplitPattern() = default;
SplitPattern::SplitPattern(SplitPattern&&) noexcept = default;
SplitPattern& SplitPattern::operator=(SplitPattern&&) noexcept = default;
SplitPattern::SplitPattern(const SplitPattern&) = default;
SplitPattern& SplitPattern::operator=(const SplitPattern&) = default;

Result<SplitPattern> SplitPattern::Compile(std::string_view pattern) {
  SplitPattern p;
  p.pattern_ = std::string(pattern);
  Parser parser(pattern, p.classes_);
  Result<std::unique_ptr<Node>> root = parser.Parse();
  if (!root.ok()) return root.status().WithContext("pattern '" + p.pattern_ + "'");
  std::vector<std::pair<size_t, const Node*>> subs;
  Emit(**root, p.program_, subs);
  p.program_.push_back({Inst::kMatch, false, 0, 0});
  // Lookahead bodies, each its own program ending in kMatch (they may nest).
  for (size_t i = 0; i < subs.size(); ++i) {
    const auto [at, node] = subs[i];
    p.program_[at].a = static_cast<uint32_t>(p.program_.size());
    Emit(*node, p.program_, subs);
    p.program_.push_back({Inst::kMatch, false, 0, 0});
  }
  return p;
}

bool SplitPattern::Run(const CodePoints& cps, size_t begin, size_t end, size_t pc, size_t pos,
                       size_t& match_end) const {
  struct Thread {
    uint32_t pc;
    size_t pos;
  };
  thread_local std::vector<Thread> stack_storage;
  const size_t base = stack_storage.size();
  stack_storage.push_back({static_cast<uint32_t>(pc), pos});
  bool found = false;
  while (stack_storage.size() > base) {
    Thread t = stack_storage.back();
    stack_storage.pop_back();
    while (true) {
      const Inst& in = program_[t.pc];
      bool ok = true;
      switch (in.op) {
        case Inst::kClass:
          if (t.pos < end && classes_[in.a].Matches(cps.cp[t.pos])) {
            ++t.pos;
            ++t.pc;
          } else {
            ok = false;
          }
          break;
        case Inst::kSplit:
          stack_storage.push_back({in.b, t.pos});
          t.pc = in.a;
          break;
        case Inst::kJump:
          t.pc = in.a;
          break;
        case Inst::kAssertStart:
          ok = t.pos == begin;
          ++t.pc;
          break;
        case Inst::kAssertEnd:
          ok = t.pos == end;
          ++t.pc;
          break;
        case Inst::kLook: {
          size_t ignored = 0;
          const bool m = Run(cps, begin, end, in.a, t.pos, ignored);
          ok = m != in.negative;
          ++t.pc;
          break;
        }
        case Inst::kMatch:
          match_end = t.pos;
          found = true;
          break;
      }
      if (found || !ok) break;
    }
    if (found) break;
  }
  stack_storage.resize(base);
  return found;
}

int64_t SplitPattern::MatchAt(const CodePoints& cps, size_t begin, size_t end, size_t pos) const {
  size_t m = 0;
  if (!Run(cps, begin, end, 0, pos, m)) return -1;
  return static_cast<int64_t>(m - pos);
}

void SplitPattern::Split(const CodePoints& cps, size_t begin, size_t end,
                         std::vector<std::pair<size_t, size_t>>& out) const {
  size_t gap = begin;
  size_t pos = begin;
  while (pos < end) {
    size_t m = 0;
    if (Run(cps, begin, end, 0, pos, m) && m > pos) {
      if (gap < pos) out.emplace_back(gap, pos);
      out.emplace_back(pos, m);
      pos = gap = m;
    } else {
      ++pos;
    }
  }
  if (gap < end) out.emplace_back(gap, end);
}

namespace {

// The families' patterns (each family's tokenizer.json pre_tokenizer, as llama.cpp's converter
// and loader name and spell them).
constexpr std::string_view kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kCjk = "[一-龥ࠀ-一가-퟿]+";

using Stage = PreTokenizer::Stage;

struct Family {
  std::vector<std::string_view> names;
  std::vector<Stage> stages;
  bool ignore_merges = false;
};

const std::vector<Family>& Families() {
  static const std::vector<Family> families = {
      {{"llama-bpe", "llama3", "llama-v3"}, {{std::string(kLlama3)}}, true},
      {{"dbrx", "smaug-bpe"}, {{std::string(kLlama3)}}, false},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2"}, {{std::string(kQwen2)}}, false},
      // (the formatter does not settle on these UTF-8 lines)
      // clang-format off
      // The cased letters (Lu, Ll, Lt) as ranges. Six code points are escaped: their NFC forms
      // differ (U+1F7D, U+1FD3, U+1FDB, U+1FBE, U+2126, U+212A), and a normalized copy would
      // change the ranges.
      {{"deepseek-llm"},
       {{"[\r\n]"},
        {"\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-"
         "ᏽᲐ-"
         "ᲺᲽ-"
         "Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-"
         "ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-"
         "ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-"
         "ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-"
         "𐳲𑢠-"
         "𑣟𞤀-"
         "𞥃]+"},
        {"\\s?[!-/:-~！-／：-～‘-‟　-。]+"},
        {"\\s+$"},
        {std::string(kCjk)},
        {"\\p{N}+"}},
       false},
      // clang-format on
      {{"deepseek-coder"},
       {{"[\r\n]"}, {"\\s?\\p{L}+"}, {"\\s?\\p{P}+"}, {std::string(kCjk)}, {"\\p{N}"}},
       false},
      {{"deepseek-v3"},
       {{"\\p{N}{1,3}"},
        {"[一-龥぀-ゟ゠-ヿ]+"},
        {"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
         "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
       false},
      // Punctuation (contiguous), ByteLevel's GPT-2 split, then on the mapped bytes Digits
      // (contiguous) and three-digit groups.
      {{"falcon"},
       {{"[\\p{P}\\$\\+<=>\\^~\\|`]+"},
        {std::string(kGpt2)},
        {"\\p{N}+", true},
        {"[0-9][0-9][0-9]", true}},
       false},
      {{"starcoder", "refact", "smollm", "codeshell"}, {{"\\p{N}"}, {std::string(kGpt2)}}, false},
      {{"default", "gpt-2", "gpt2", "phi-2", "roberta-bpe", "mpt", "gpt-neox", "olmo", "jina-es",
        "jina-de"},
       {{std::string(kGpt2)}},
       false},
  };
  return families;
}

}  // namespace

std::vector<std::string> PreTokenizer::Names() {
  std::vector<std::string> names;
  for (const Family& f : Families()) {
    for (std::string_view n : f.names) names.emplace_back(n);
  }
  return names;
}

std::vector<PreTokenizer::Stage> PreTokenizer::StagesOf(std::string_view name,
                                                        bool* ignore_merges) {
  for (const Family& f : Families()) {
    if (std::find(f.names.begin(), f.names.end(), name) == f.names.end()) continue;
    if (ignore_merges != nullptr) *ignore_merges = f.ignore_merges;
    return f.stages;
  }
  return {};
}

std::string PreTokenizer::NameOfStages(const std::vector<Stage>& stages) {
  for (const Family& f : Families()) {
    if (f.stages == stages) return std::string(f.names[0]);
  }
  return "";
}

Result<PreTokenizer> PreTokenizer::ForName(std::string_view name) {
  bool ignore_merges = false;
  const std::vector<Stage> stages = StagesOf(name, &ignore_merges);
  if (stages.empty()) {
    std::string known;
    for (const std::string& n : Names()) known += (known.empty() ? "" : ", ") + n;
    return Status::Unimplemented("tokenizer.ggml.pre: pre-tokenizer '" + std::string(name) +
                                 "' is not supported (supported: " + known + ")");
  }
  SEXTANT_ASSIGN_OR_RETURN(PreTokenizer p, FromStages(stages));
  p.ignore_merges_ = ignore_merges;
  return p;
}

Result<PreTokenizer> PreTokenizer::FromStages(const std::vector<Stage>& stages) {
  PreTokenizer p;
  for (const Stage& st : stages) {
    SEXTANT_ASSIGN_OR_RETURN(SplitPattern sp, SplitPattern::Compile(st.pattern));
    p.patterns_.emplace_back(std::move(sp), st.byte_level);
  }
  return p;
}

std::vector<std::pair<size_t, size_t>> PreTokenizer::Split(std::string_view text) const {
  // Pieces as byte ranges; each stage decodes a piece (as UTF-8, or as mapped bytes), splits it
  // and maps the code point ranges back to bytes.
  std::vector<std::pair<size_t, size_t>> pieces = {{0, text.size()}};
  std::vector<std::pair<size_t, size_t>> next, parts;
  CodePoints cps;
  for (const auto& [pattern, byte_level] : patterns_) {
    next.clear();
    for (const auto& [off, len] : pieces) {
      const std::string_view piece = text.substr(off, len);
      if (byte_level) {
        cps.cp.resize(len);
        cps.offset.resize(len + 1);
        for (size_t i = 0; i < len; ++i) {
          cps.cp[i] = ByteToCodePoint(static_cast<uint8_t>(piece[i]));
          cps.offset[i] = static_cast<uint32_t>(i);
        }
        cps.offset[len] = static_cast<uint32_t>(len);
      } else {
        cps = CodePoints::Decode(piece);
      }
      parts.clear();
      pattern.Split(cps, 0, cps.cp.size(), parts);
      for (const auto& [b, e] : parts) {
        next.emplace_back(off + cps.offset[b], cps.offset[e] - cps.offset[b]);
      }
    }
    pieces.swap(next);
  }
  if (text.empty()) pieces.clear();
  return pieces;
}

}  // namespace sextant::unicode
