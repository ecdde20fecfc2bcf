//! PLACEHOLDER until the decoder lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbology { Code128, Code39, Qr, DataMatrix, Pdf417, Ean13, Other }
impl Symbology { pub fn as_str(&self) -> &'static str { "other" } }
#[derive(Debug, Clone, PartialEq)]
pub struct FoundBarcode { pub symbology: Symbology, pub text: String, pub orientation: u16 }
pub struct DecodeOptions { pub is_cover: Box<dyn Fn(&str) -> bool + Send + Sync>, pub full_scan: bool }
pub struct PageBarcodes { pub cover_code: Option<String>, pub barcodes: Vec<FoundBarcode> }
pub fn scan_page(_img: &image::GrayImage, _opts: &DecodeOptions) -> PageBarcodes { PageBarcodes { cover_code: None, barcodes: vec![] } }
