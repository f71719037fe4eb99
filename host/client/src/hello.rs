//! A complete wisp function module of about 400 bytes, written
//! instruction by instruction: `my_function(x) = x + 7`, the function of
//! `examples/hello`.
//!
//! `wisp hello` must work from any directory, on a machine that has no
//! clone of the repository and no `wasm32-wasip1` target, so it cannot
//! build that crate; the benchmarks use it as the smallest module a cold
//! start can have. It follows guest ABI 1 (see `wisp_abi`): an exported
//! memory, a bump allocator `wisp_alloc`, the export
//! `wisp:fn:my_function`, and the manifest section. It parses its argument
//! as a decimal integer (what `examples/hello` accepts as an `i64`, up to
//! 18 digits), adds 7, and writes the sum as JSON; anything else is a
//! bad-arguments error. Every backend runs it like a module built with
//! `wisp-guest`.

/// The module's bytes.
pub fn module() -> Vec<u8> {
    let manifest = format!(
        "{{\"abi\":{},\"sdk\":\"wisp-hello {}\",\"function\":\"my_function\",\"params\":[\"x\"]}}\n",
        wisp_abi::ABI_VERSION,
        env!("CARGO_PKG_VERSION"),
    );
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    // Types: 0 = (i32) -> i32, the allocator; 1 = (i32, i32) -> i64, a
    // function export.
    section(
        &mut wasm,
        1,
        &[
            &[2][..],
            &[0x60, 1, I32, 1, I32],
            &[0x60, 2, I32, I32, 1, I64],
        ]
        .concat(),
    );
    // Functions: 0 the allocator, 1 my_function.
    section(&mut wasm, 3, &[2, 0, 1]);
    // One memory of 2 pages at first.
    section(&mut wasm, 5, &[1, 0, 2]);
    // Global 0: the allocator's next free byte.
    let mut global = vec![1, I32, 1, op::I32_CONST];
    sleb(&mut global, HEAP_START.into());
    global.push(op::END);
    section(&mut wasm, 6, &global);
    let mut exports = vec![3];
    for (name, kind, index) in [
        ("memory", 2, 0),
        (wisp_abi::ALLOC_EXPORT, 0, 0),
        ("wisp:fn:my_function", 0, 1),
    ] {
        name_bytes(&mut exports, name);
        exports.extend([kind, index]);
    }
    section(&mut wasm, 7, &exports);
    let mut code = vec![2];
    function(&mut code, &[(1, I32)], &alloc_body());
    function(&mut code, &[(5, I32), (1, I64)], &my_function_body());
    section(&mut wasm, 10, &code);
    // The bad-arguments result, a tag byte and a message, at BAD_ARGS.
    let mut data = vec![1, 0, op::I32_CONST];
    sleb(&mut data, BAD_ARGS.into());
    data.push(op::END);
    let bad = [&[2u8][..], BAD_ARGS_MESSAGE.as_bytes()].concat();
    uleb(&mut data, bad.len() as u64);
    data.extend(&bad);
    section(&mut wasm, 11, &data);
    let mut custom = Vec::new();
    name_bytes(&mut custom, wisp_abi::MANIFEST_SECTION);
    custom.extend(manifest.as_bytes());
    section(&mut wasm, 0, &custom);
    wasm
}

const I32: u8 = 0x7f;
const I64: u8 = 0x7e;
/// Where the bad-arguments result lies in memory.
const BAD_ARGS: u32 = 16;
const BAD_ARGS_MESSAGE: &str = "my_function takes one integer, such as 3";
/// Where the allocator starts.
const HEAP_START: u32 = 1024;

/// The opcodes used here.
mod op {
    pub const BLOCK: u8 = 0x02;
    pub const LOOP: u8 = 0x03;
    pub const IF: u8 = 0x04;
    pub const END: u8 = 0x0b;
    pub const BR: u8 = 0x0c;
    pub const BR_IF: u8 = 0x0d;
    pub const RETURN: u8 = 0x0f;
    pub const CALL: u8 = 0x10;
    pub const LOCAL_GET: u8 = 0x20;
    pub const LOCAL_SET: u8 = 0x21;
    pub const LOCAL_TEE: u8 = 0x22;
    pub const GLOBAL_GET: u8 = 0x23;
    pub const GLOBAL_SET: u8 = 0x24;
    pub const I32_LOAD8_U: u8 = 0x2d;
    pub const I32_STORE8: u8 = 0x3a;
    pub const MEMORY_SIZE: u8 = 0x3f;
    pub const MEMORY_GROW: u8 = 0x40;
    pub const I32_CONST: u8 = 0x41;
    pub const I64_CONST: u8 = 0x42;
    pub const I32_EQZ: u8 = 0x45;
    pub const I32_EQ: u8 = 0x46;
    pub const I32_NE: u8 = 0x47;
    pub const I32_GT_U: u8 = 0x4b;
    pub const I32_LE_U: u8 = 0x4d;
    pub const I32_GE_U: u8 = 0x4f;
    pub const I64_NE: u8 = 0x52;
    pub const I64_LT_S: u8 = 0x53;
    pub const I32_ADD: u8 = 0x6a;
    pub const I32_SUB: u8 = 0x6b;
    pub const I32_AND: u8 = 0x71;
    pub const I32_OR: u8 = 0x72;
    pub const I32_SHL: u8 = 0x74;
    pub const I32_SHR_U: u8 = 0x76;
    pub const I64_ADD: u8 = 0x7c;
    pub const I64_SUB: u8 = 0x7d;
    pub const I64_MUL: u8 = 0x7e;
    pub const I64_DIV_U: u8 = 0x80;
    pub const I64_REM_U: u8 = 0x82;
    pub const I64_OR: u8 = 0x84;
    pub const I64_SHL: u8 = 0x86;
    pub const I32_WRAP_I64: u8 = 0xa7;
    pub const I64_EXTEND_I32_U: u8 = 0xad;
    /// The block type of a block that takes and leaves nothing.
    pub const EMPTY: u8 = 0x40;
}

/// A function body being written.
struct Body(Vec<u8>);

impl Body {
    fn op(&mut self, opcode: u8) -> &mut Self {
        self.0.push(opcode);
        self
    }
    fn with_index(&mut self, opcode: u8, index: u32) -> &mut Self {
        self.0.push(opcode);
        uleb(&mut self.0, index.into());
        self
    }
    fn get(&mut self, local: u32) -> &mut Self {
        self.with_index(op::LOCAL_GET, local)
    }
    fn set(&mut self, local: u32) -> &mut Self {
        self.with_index(op::LOCAL_SET, local)
    }
    fn i32(&mut self, value: i32) -> &mut Self {
        self.0.push(op::I32_CONST);
        sleb(&mut self.0, value.into());
        self
    }
    fn i64(&mut self, value: i64) -> &mut Self {
        self.0.push(op::I64_CONST);
        sleb(&mut self.0, value);
        self
    }
    fn block(&mut self, opcode: u8) -> &mut Self {
        self.0.extend([opcode, op::EMPTY]);
        self
    }
    fn memarg(&mut self, opcode: u8) -> &mut Self {
        // Byte access: alignment 2^0, offset 0.
        self.0.extend([opcode, 0, 0]);
        self
    }
    /// `local += delta` for an i32 local.
    fn bump(&mut self, local: u32, delta: i32) -> &mut Self {
        self.get(local).i32(delta).op(op::I32_ADD).set(local)
    }
}

// The locals of my_function.
const ARGS: u32 = 0;
const LEN: u32 = 1;
const I: u32 = 2;
const NEGATIVE: u32 = 3;
const DIGITS: u32 = 4;
const C: u32 = 5;
const POS: u32 = 6;
const VALUE: u32 = 7;

/// `(size) -> ptr`: hands out memory from global 0 upwards, 8-aligned,
/// growing the memory when needed; 0 when it cannot grow.
fn alloc_body() -> Vec<u8> {
    const SIZE: u32 = 0;
    const END: u32 = 1;
    let mut b = Body(Vec::new());
    b.get(SIZE)
        .i32(7)
        .op(op::I32_ADD)
        .i32(-8)
        .op(op::I32_AND)
        .with_index(op::GLOBAL_GET, 0)
        .op(op::I32_ADD)
        .set(END);
    b.block(op::BLOCK)
        .get(END)
        .op(op::MEMORY_SIZE)
        .op(0)
        .i32(16)
        .op(op::I32_SHL)
        .op(op::I32_LE_U)
        .with_index(op::BR_IF, 0)
        .get(END)
        .op(op::MEMORY_SIZE)
        .op(0)
        .i32(16)
        .op(op::I32_SHL)
        .op(op::I32_SUB)
        .i32(0xffff)
        .op(op::I32_ADD)
        .i32(16)
        .op(op::I32_SHR_U)
        .op(op::MEMORY_GROW)
        .op(0)
        .i32(-1)
        .op(op::I32_EQ)
        .block(op::IF)
        .i32(0)
        .op(op::RETURN)
        .op(op::END)
        .op(op::END);
    b.with_index(op::GLOBAL_GET, 0)
        .get(END)
        .with_index(op::GLOBAL_SET, 0);
    b.0
}

/// Sets `c` to the byte at `args + i`.
fn load_c(b: &mut Body) {
    b.get(ARGS)
        .get(I)
        .op(op::I32_ADD)
        .memarg(op::I32_LOAD8_U)
        .set(C);
}

/// Advances `i` past spaces, tabs and line ends.
fn skip_whitespace(b: &mut Body) {
    b.block(op::BLOCK).block(op::LOOP);
    b.get(I).get(LEN).op(op::I32_GE_U).with_index(op::BR_IF, 1);
    load_c(b);
    let mut first = true;
    for space in [b' ', b'\t', b'\n', b'\r'] {
        b.get(C).i32(space.into()).op(op::I32_EQ);
        if !first {
            b.op(op::I32_OR);
        }
        first = false;
    }
    b.op(op::I32_EQZ).with_index(op::BR_IF, 1);
    b.bump(I, 1).with_index(op::BR, 0);
    b.op(op::END).op(op::END);
}

/// Returns the bad-arguments result if the condition on the stack holds.
fn bad_args_if(b: &mut Body) {
    let len = 1 + BAD_ARGS_MESSAGE.len() as u32;
    b.block(op::IF)
        .i64(wisp_abi::pack_output(BAD_ARGS, len) as i64)
        .op(op::RETURN)
        .op(op::END);
}

/// `(args, len) -> packed result`: parses an integer, adds 7, writes the
/// sum as JSON after an OK tag.
fn my_function_body() -> Vec<u8> {
    let mut b = Body(Vec::new());
    skip_whitespace(&mut b);
    // An optional minus sign.
    b.get(I).get(LEN).op(op::I32_GE_U).op(op::I32_EQZ);
    b.block(op::IF);
    load_c(&mut b);
    b.get(C).i32(b'-'.into()).op(op::I32_EQ).block(op::IF);
    b.i32(1).set(NEGATIVE).bump(I, 1);
    b.op(op::END).op(op::END);
    // Digits: value = value * 10 + digit, at most 18 of them.
    b.block(op::BLOCK).block(op::LOOP);
    b.get(I).get(LEN).op(op::I32_GE_U).with_index(op::BR_IF, 1);
    load_c(&mut b);
    b.get(C)
        .i32(b'0'.into())
        .op(op::I32_SUB)
        .with_index(op::LOCAL_TEE, C)
        .i32(9)
        .op(op::I32_GT_U)
        .with_index(op::BR_IF, 1);
    b.get(DIGITS).i32(18).op(op::I32_GE_U);
    bad_args_if(&mut b);
    b.get(VALUE)
        .i64(10)
        .op(op::I64_MUL)
        .get(C)
        .op(op::I64_EXTEND_I32_U)
        .op(op::I64_ADD)
        .set(VALUE);
    b.bump(DIGITS, 1).bump(I, 1).with_index(op::BR, 0);
    b.op(op::END).op(op::END);
    skip_whitespace(&mut b);
    // Nothing else may follow, and there must have been a digit.
    b.get(DIGITS)
        .op(op::I32_EQZ)
        .get(I)
        .get(LEN)
        .op(op::I32_NE)
        .op(op::I32_OR);
    bad_args_if(&mut b);
    // value = ±value + 7
    b.get(NEGATIVE).block(op::IF);
    b.i64(0).get(VALUE).op(op::I64_SUB).set(VALUE);
    b.op(op::END);
    b.get(VALUE).i64(7).op(op::I64_ADD).set(VALUE);
    // Keep the sign apart and write the magnitude.
    b.get(VALUE)
        .i64(0)
        .op(op::I64_LT_S)
        .with_index(op::LOCAL_TEE, NEGATIVE)
        .block(op::IF);
    b.i64(0).get(VALUE).op(op::I64_SUB).set(VALUE);
    b.op(op::END);
    // A buffer of 32 bytes, written from its end: digits, sign, tag.
    b.i32(32).with_index(op::CALL, 0).set(ARGS);
    b.get(ARGS).i32(32).op(op::I32_ADD).set(POS);
    b.block(op::LOOP);
    b.bump(POS, -1);
    b.get(POS)
        .get(VALUE)
        .i64(10)
        .op(op::I64_REM_U)
        .op(op::I32_WRAP_I64)
        .i32(b'0'.into())
        .op(op::I32_ADD)
        .memarg(op::I32_STORE8);
    b.get(VALUE).i64(10).op(op::I64_DIV_U).set(VALUE);
    b.get(VALUE).i64(0).op(op::I64_NE).with_index(op::BR_IF, 0);
    b.op(op::END);
    b.get(NEGATIVE).block(op::IF);
    b.bump(POS, -1)
        .get(POS)
        .i32(b'-'.into())
        .memarg(op::I32_STORE8);
    b.op(op::END);
    b.bump(POS, -1)
        .get(POS)
        .i32(wisp_abi::OutputTag::Ok as i32)
        .memarg(op::I32_STORE8);
    // (pos << 32) | (args + 32 - pos)
    b.get(POS)
        .op(op::I64_EXTEND_I32_U)
        .i64(32)
        .op(op::I64_SHL)
        .get(ARGS)
        .i32(32)
        .op(op::I32_ADD)
        .get(POS)
        .op(op::I32_SUB)
        .op(op::I64_EXTEND_I32_U)
        .op(op::I64_OR);
    b.0
}

fn function(code: &mut Vec<u8>, locals: &[(u32, u8)], body: &[u8]) {
    let mut entry = Vec::new();
    uleb(&mut entry, locals.len() as u64);
    for &(count, ty) in locals {
        uleb(&mut entry, count.into());
        entry.push(ty);
    }
    entry.extend(body);
    entry.push(op::END);
    uleb(code, entry.len() as u64);
    code.extend(entry);
}

fn section(wasm: &mut Vec<u8>, id: u8, content: &[u8]) {
    wasm.push(id);
    uleb(wasm, content.len() as u64);
    wasm.extend(content);
}

fn name_bytes(out: &mut Vec<u8>, name: &str) {
    uleb(out, name.len() as u64);
    out.extend(name.as_bytes());
}

fn uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
