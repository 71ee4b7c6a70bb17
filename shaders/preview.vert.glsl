// Stillflow preview: one textured quad covering the image (shared by both preview programs).
// Body only: the consumer's prelude declares the inputs and the `uv` output.
//
// Inputs:
//   pos                       vec2  quad corner in the consumer's drawing space (region px in Blender)
//   texco                     vec2  the corner's texture coordinate, 0..1 across the image, v up
//   ModelViewProjectionMatrix mat4  drawing space -> clip space
// Output:
//   uv                        vec2  interpolated texture coordinate, 0..1 across the image

void main()
{
    uv = texco;
    gl_Position = ModelViewProjectionMatrix * vec4(pos, 0.0, 1.0);
}
