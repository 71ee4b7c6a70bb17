// Stillflow loop preview: frame t of the N-frame loop, approximated by gathering (backward warp).
// Needs preview_common.glsl before it. Body only: the consumer's prelude declares the inputs.
//
// Inputs:
//   uv            vec2       texture coordinate of this fragment, 0..1 across the image
//   image_tex, motion_tex, mask_tex, speed   as in preview_common.glsl
//   frame         int        loop phase t, 0 <= t < N, frames
//   frames        int        loop length N (RenderOptions.frames), frames
//   display_srgb  int        1 = encode the output with the sRGB curve (Blender draws overlays in
//                            display space), 0 = output the image's own values
//   sway_tex, sway_cycles    the swaying regions' layers, as in preview_common.glsl; all k = 0: none
//   base_tex      sampler2D  (W, H) RGBA base of the image (stages/sway_split.gaussian_base)
// Output:
//   FragColor     vec4       preview pixel; static pixels (S = 0) equal the image exactly
//
// The engine splats the image forward along F_fwd(t) and along F_bwd(N - t); the backward copy's
// share is blend_schedule(t/N) = clamp((t/N - 0.25) / 0.5, 0, 1) (stages/blend.py, BLEND_SPAN = 0.5),
// the forward copy's the rest (algorithm.md §1.2 steps 3-5). Gathered at output pixel y, the forward splat is
// approximately the image at the point that reaches y after t steps, found by walking t steps
// against the motion; the backward one walks N - t steps with it. Frame 0 and frame N are the
// image itself, so the loop seam is exact.
//
// Swaying regions (stages/sway.py) move by D = sum of sin(a) C + (cos(a) - 1) S over the layers,
// a = 2 pi ((k t) mod N) / N: the base bilinearly from y - D, the detail (image - base) from
// y - steps with whole-pixel steps = floor(D' + P0 + 1/2) - floor(P0 + 1/2), D' and P0 = sum of S over
// the layers that move the detail (a shimmer's layer, k < 0, leaves it in place), as the engine does
// (stages/sway_warp.py); frame 0 and N are the image.

vec3 sf_srgb_encode(vec3 linear)
{
    vec3 x = clamp(linear, 0.0, 1.0);
    vec3 low = 12.92 * x;
    vec3 high = 1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055;
    return mix(high, low, vec3(lessThanEqual(x, vec3(0.0031308))));
}

void main()
{
    vec2 y = sf_pixel_position(uv);
    // The engine's blend schedule: a linear ramp over the middle half of the loop (BLEND_SPAN = 0.5
    // in backend stillflow/stages/blend.py).
    float alpha = clamp((float(frame) / float(frames) - 0.25) / 0.5, 0.0, 1.0);
    vec2 from_fwd = sf_integrate(y, frame, -1.0);
    vec2 from_bwd = sf_integrate(y, frames - frame, 1.0);
    vec4 moving = (1.0 - alpha) * sf_image_bilinear(from_fwd) + alpha * sf_image_bilinear(from_bwd);
    vec4 still = sf_image_bilinear(y);
    float weight = sf_mask_bilinear(y);
    // mix() with weight 0 returns `still` bit for bit: static pixels stay untouched.
    vec4 colour = mix(still, moving, weight);
    if (any(notEqual(sway_cycles, ivec4(0)))) {
        ivec2 size = textureSize(image_tex, 0);
        ivec2 texel = sf_reflect2(ivec2(floor(y + 0.5)), size);
        vec2 d, swing, rest, now;
        float reach;
        sf_sway(texel, sf_sway_angles(frame, 0.0), d, swing, rest, now, reach);
        if (d != vec2(0.0)) {
            vec2 steps = floor(swing + rest + 0.5) - floor(rest + 0.5);
            ivec2 from_detail = sf_reflect2(ivec2(y - steps), size);
            vec4 detail = texelFetch(image_tex, from_detail, 0) - texelFetch(base_tex, from_detail, 0);
            colour = sf_base_bilinear(y - d) + detail;
        }
    }
    if (display_srgb != 0) {
        colour.rgb = sf_srgb_encode(colour.rgb);
    }
    FragColor = colour;
}
