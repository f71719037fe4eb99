#[derive(Debug)]
pub struct Oops;

#[wisp_guest::function]
fn fail() -> Result<u8, Oops> {
    Err(Oops)
}

mod aliased {
    use super::Oops;

    pub type Result<T> = std::result::Result<T, Oops>;

    #[wisp_guest::function]
    fn fail_too() -> Result<u8> {
        Err(Oops)
    }
}

mod bare {
    use super::Oops;

    pub type Result = std::result::Result<u8, Oops>;

    #[wisp_guest::function]
    fn fail_again() -> Result {
        Err(Oops)
    }
}

#[wisp_guest::function]
fn opaque() -> Result<impl serde::Serialize, Oops> {
    Ok(1)
}

fn main() {}
