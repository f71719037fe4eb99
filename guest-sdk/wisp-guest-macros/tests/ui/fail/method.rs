struct Counter(u32);

impl Counter {
    #[wisp_guest::function]
    fn get(&self) -> u32 {
        self.0
    }
}

fn main() {}
