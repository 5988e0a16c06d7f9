/**
 * The enrolment QR code as SVG for a web page: the same payload (the otpauth:// URI) and error correction
 * level (M) as the terminal QR of `mail2fa enable` (src/totp/qr.ts). qrcode is loaded on first use only.
 */
export async function qrSvg(otpauthUri: string): Promise<string> {
  const QRCode = (await import('qrcode')).default;
  return QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
}
